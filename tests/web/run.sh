#!/usr/bin/env bash
# Browser tests of the web app: the front-end unit tests (`node --test`), then end-to-end tests
# in headless Chromium against a real `gloss up --demo`. Needs Node.js, Debian's chromium and
# the debug binaries, which this script builds.
set -euo pipefail
cd "$(dirname "$0")"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/gloss-target}"

echo "== front-end unit tests"
node --test ../../crates/gloss-web/tests/js/

echo "== browser tests (screenshots in ${GLOSS_E2E_ARTIFACTS:-tests/web/artifacts})"
(cd ../.. && cargo build --quiet --bin gloss --bin glossctl)
if [ ! -d node_modules/playwright-core ]; then
  npm ci --no-audit --no-fund --silent
fi
# The OpenID Connect provider the single sign-on test signs in at.
if [ ! -d ../oidc/node_modules/oidc-provider ]; then
  (cd ../oidc && npm ci --no-audit --no-fund --silent)
fi
node --test --test-concurrency=1 --test-reporter=spec e2e.test.mjs
