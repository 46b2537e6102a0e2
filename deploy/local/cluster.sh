#!/usr/bin/env bash
# A three-coordinator Gloss cluster and one worker on this machine, without Kubernetes or
# containers: plain processes on loopback ports, each with its own data directory.
#
#   deploy/local/cluster.sh start     # start (or finish starting) everything, wait for a leader
#   deploy/local/cluster.sh status    # processes, readiness, `glossctl cluster status`
#   deploy/local/cluster.sh stop      # SIGTERM, then wait for a clean stop
#
# Coordinator N (1..3) listens on gRPC 7070+100*(N-1), HTTP 7080+100*(N-1) and internal
# 7071+100*(N-1) (GLOSS_PORT_BASE moves them all). Everything lives under GLOSS_CLUSTER_DIR
# (default ~/.local/state/gloss-cluster): data/, logs/, run/ (pid files) and tokens/ (the first
# administrator's and the workers' join token, generated once). Binaries: GLOSS_BIN and
# GLOSSCTL_BIN, else `gloss`/`glossctl` on PATH, else this checkout's release build.
# Other GLOSS_* variables (GLOSS_LOG, GLOSS_TLS_DIR...) reach every process as they are.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
DIR="${GLOSS_CLUSTER_DIR:-${XDG_STATE_HOME:-$HOME/.local/state}/gloss-cluster}"
BASE="${GLOSS_PORT_BASE:-7070}"
HOST=127.0.0.1
NODES=(1 2 3)

find_bin() {  # find_bin NAME OVERRIDE
  local name="$1" override="$2" target="${CARGO_TARGET_DIR:-$ROOT/target}"
  if [[ -n "$override" ]]; then echo "$override"
  elif command -v "$name" >/dev/null 2>&1; then command -v "$name"
  elif [[ -x "$target/release/$name" ]]; then echo "$target/release/$name"
  elif [[ -x "$target/debug/$name" ]]; then echo "$target/debug/$name"
  else echo "error: no $name binary: set GLOSS_BIN/GLOSSCTL_BIN, put it on PATH, or" \
            "cargo build --release --bin $name" >&2; exit 2
  fi
}

grpc_port() { echo $((BASE + 100 * ($1 - 1))); }
http_port() { echo $((BASE + 10 + 100 * ($1 - 1))); }
raft_port() { echo $((BASE + 1 + 100 * ($1 - 1))); }
members() {
  local out="" n
  for n in "${NODES[@]}"; do out+="${out:+,}$n=$HOST:$(raft_port "$n")"; done
  echo "$out"
}
servers() {
  local out="" n
  for n in "${NODES[@]}"; do out+="${out:+,}$HOST:$(grpc_port "$n")"; done
  echo "$out"
}
raft_addrs() {
  local out="" n
  for n in "${NODES[@]}"; do out+="${out:+,}$HOST:$(raft_port "$n")"; done
  echo "$out"
}

pid_of() {  # pid_of NAME: the pid from NAME's pid file when that process still runs
  local f="$DIR/run/$1.pid" pid
  [[ -f "$f" ]] || return 1
  pid="$(cat "$f")"
  if kill -0 "$pid" 2>/dev/null; then echo "$pid"; else rm -f "$f"; return 1; fi
}

ready() {  # ready N: coordinator N answers /readyz (a leader is known)
  if command -v curl >/dev/null 2>&1; then
    curl -sf "http://$HOST:$(http_port "$1")/readyz" >/dev/null 2>&1
  else
    python3 -c "import urllib.request,sys; urllib.request.urlopen(sys.argv[1], timeout=2)" \
      "http://$HOST:$(http_port "$1")/readyz" >/dev/null 2>&1
  fi
}

# A flag or subcommand this build of gloss knows (older builds lack the worker and token files).
supports() { "$GLOSS" "$@" --help >/dev/null 2>&1; }
has_flag() { "$GLOSS" "$1" --help 2>/dev/null | grep -- "$2" >/dev/null; }

make_token() {  # make_token FILE: 48 random hex digits, once
  [[ -s "$1" ]] && return 0
  (umask 077; od -An -tx1 -N24 /dev/urandom | tr -d ' \n' >"$1")
}

spawn() {  # spawn NAME COMMAND...: start in the background, detached from this shell
  local name="$1"; shift
  if pid="$(pid_of "$name")"; then echo "  $name already running (pid $pid)"; return 0; fi
  nohup "$@" >>"$DIR/logs/$name.log" 2>&1 </dev/null &
  echo $! >"$DIR/run/$name.pid"
  echo "  $name started (pid $!), log $DIR/logs/$name.log"
}

start() {
  GLOSS="$(find_bin gloss "${GLOSS_BIN:-}")"
  mkdir -p "$DIR"/{data,logs,run,tokens,models,work}
  make_token "$DIR/tokens/admin-token"
  make_token "$DIR/tokens/join-token"
  local token_args=() n admin="$DIR/tokens/admin-token"
  if has_flag coordinator --admin-token-file; then
    token_args=(--admin-token-file "$DIR/tokens/admin-token" --join-token-file "$DIR/tokens/join-token")
  else
    admin="printed once in $DIR/logs/coordinator-*.log (this gloss has no --admin-token-file)"
  fi
  echo "starting 3 coordinators ($GLOSS)"
  for n in "${NODES[@]}"; do
    mkdir -p "$DIR/data/coordinator-$n"
    spawn "coordinator-$n" "$GLOSS" coordinator \
      --node-id "$n" \
      --data-dir "$DIR/data/coordinator-$n" \
      --listen "$HOST:$(grpc_port "$n")" \
      --http "$HOST:$(http_port "$n")" \
      --raft-listen "$HOST:$(raft_port "$n")" \
      --initial-members "$(members)" \
      "${token_args[@]}"
  done
  echo -n "waiting for a leader"
  local ok=""
  for _ in $(seq 1 120); do
    for n in "${NODES[@]}"; do if ready "$n"; then ok=1; break; fi; done
    [[ -n "$ok" ]] && break
    echo -n "."; sleep 0.5
  done
  echo
  if [[ -z "$ok" ]]; then
    echo "error: no coordinator became ready in 60 s; see $DIR/logs/" >&2
    exit 1
  fi
  if supports worker; then
    echo "starting 1 worker"
    mkdir -p "$DIR/models" "$DIR/work/worker-1"
    GLOSS_MODELS_DIR="$DIR/models" spawn worker-1 "$GLOSS" worker \
      --coordinator "$(raft_addrs)" \
      --join-token-file "$DIR/tokens/join-token" \
      --labels "host=$(hostname -s 2>/dev/null || echo local),pool=local" \
      --work-dir "$DIR/work/worker-1"
  else
    echo "note: this gloss has no 'worker' command yet; started the coordinators only"
  fi
  cat <<EOF

Gloss is up:
  gRPC API     $(servers)
  web app      http://$HOST:$(http_port 1)/  (and :$(http_port 2), :$(http_port 3))
  admin token  $admin  (user "admin")
  try          GLOSS_SERVER=$(servers) glossctl cluster status
  stop         $0 stop
EOF
}

stop() {
  local names=(worker-1) n pid pids=()
  for n in "${NODES[@]}"; do names+=("coordinator-$n"); done
  # The worker first, so it does not see its coordinators vanish.
  for n in "${names[@]}"; do
    if pid="$(pid_of "$n")"; then
      kill -TERM "$pid" && echo "  $n stopping (pid $pid)"
      pids+=("$n:$pid")
    fi
  done
  [[ ${#pids[@]} -eq 0 ]] && { echo "nothing running"; return 0; }
  local entry left
  for _ in $(seq 1 60); do
    left=0
    for entry in "${pids[@]}"; do kill -0 "${entry#*:}" 2>/dev/null && left=$((left + 1)); done
    [[ $left -eq 0 ]] && break
    sleep 0.5
  done
  for entry in "${pids[@]}"; do
    if kill -0 "${entry#*:}" 2>/dev/null; then
      echo "  ${entry%%:*} did not stop in 30 s; sending SIGKILL" >&2
      kill -KILL "${entry#*:}" 2>/dev/null || true
    fi
    rm -f "$DIR/run/${entry%%:*}.pid"
  done
  echo "stopped"
}

status() {
  local n pid state rc=0
  for n in "${NODES[@]}"; do
    if pid="$(pid_of "coordinator-$n")"; then
      if ready "$n"; then state="ready"; else state="running, not ready"; fi
      echo "coordinator-$n  pid $pid  $state  grpc $HOST:$(grpc_port "$n")  http $HOST:$(http_port "$n")"
    else
      echo "coordinator-$n  stopped"; rc=3
    fi
  done
  if pid="$(pid_of worker-1)"; then echo "worker-1       pid $pid  running"
  else echo "worker-1       stopped"; fi
  if [[ $rc -eq 0 ]] && ctl="$(find_bin glossctl "${GLOSSCTL_BIN:-}" 2>/dev/null)"; then
    echo
    GLOSS_TOKEN="${GLOSS_TOKEN:-$(cat "$DIR/tokens/admin-token" 2>/dev/null)}" \
      "$ctl" --server "$(servers)" cluster status || rc=1
  fi
  return $rc
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  status) status ;;
  restart) stop; start ;;
  *) echo "usage: $0 start|stop|status|restart" >&2; exit 2 ;;
esac
