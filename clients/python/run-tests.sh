#!/usr/bin/env bash
# Tests of the Python client against a real `gloss up` (started by the tests themselves).
#
# Installs the package with its test extras into a virtual environment (.venv here, or
# $GLOSS_PY_VENV; set GLOSS_PY_VENV=system to use the current python3 instead), building the
# gRPC stubs from ../../proto on the way, then runs pytest. Needs the gloss binary:
# $GLOSS_BIN, else $CARGO_TARGET_DIR/debug/gloss (build it with `cargo build --bin gloss`).
# Exits non-zero when a test fails or when no test was collected.
set -euo pipefail
cd "$(dirname "$0")"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/gloss-target}"
export PIP_ROOT_USER_ACTION=ignore PIP_DISABLE_PIP_VERSION_CHECK=1

venv="${GLOSS_PY_VENV:-.venv}"
if [[ "$venv" == system ]]; then
  py=python3
else
  if [[ ! -x "$venv/bin/python" ]]; then
    python3 -m venv "$venv"
  fi
  py="$venv/bin/python"
fi
"$py" -m pip install -q --disable-pip-version-check --upgrade pip >/dev/null
# Not editable: the tests run against the package as users get it.
"$py" -m pip install -q --disable-pip-version-check --force-reinstall --no-deps . >/dev/null
"$py" -m pip install -q --disable-pip-version-check ".[test]" >/dev/null

set +e
"$py" -m pytest "$@"
status=$?
set -e
if [[ $status -eq 5 ]]; then
  echo "error: pytest collected no tests" >&2
  exit 1
fi
exit $status
