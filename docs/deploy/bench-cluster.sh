#!/usr/bin/env bash
# The cluster figures of BENCHMARKS.md ("Cluster"): session creations per second through HAProxy
# (docs/deploy/haproxy.cfg) with 1, 2 and 3 nodes, and how long a restarted node (--registry) takes
# until its sessions answer again. Everything runs on this machine, the load generator included, so
# the figures are lower bounds. Needs haproxy, redis-server, curl and a release build:
#   cargo build --release --bin ui-gateway && bash docs/deploy/bench-cluster.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
BIN=${BIN:-target/release/ui-gateway}
SESSIONS=${SESSIONS:-2000}
RESTORED=${RESTORED:-1000}
work=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_ok() { until curl -sf -o /dev/null "$1"; do sleep 0.02; done; }
now() { date +%s.%N; }

# Session creations through HAProxy with 1, 2, 3 nodes.
for n in 1 2 3; do
  node_pids=()
  lb=$(port)
  cfg=$(sed "s/bind 127.0.0.1:8000/bind 127.0.0.1:$lb/" docs/deploy/haproxy.cfg)
  for i in 1 2 3; do
    if [ "$i" -le "$n" ]; then
      p=$(port)
      "$BIN" --listen "127.0.0.1:$p" --node-id "0$i" --log-level warn --max-sessions 0 \
        --max-sessions-per-client 0 --session-rate 0 & pids+=($!); node_pids+=($!)
      cfg=$(sed "s/127.0.0.1:800$i/127.0.0.1:$p/" <<<"$cfg")
      wait_ok "http://127.0.0.1:$p/healthz"
    else
      cfg=$(grep -v -e "id_0$i" -e "server n0$i" <<<"$cfg")
    fi
  done
  echo "$cfg" > "$work/haproxy-$n.cfg"
  haproxy -db -f "$work/haproxy-$n.cfg" 2>/dev/null & pids+=($!); lb_pid=$!
  wait_ok "http://127.0.0.1:$lb/healthz"
  rate=$("$BIN" loadtest --json --target "http://127.0.0.1:$lb" --sessions "$SESSIONS" --concurrency 64 \
    --actions 0 | python3 -c '
import json, sys
s = json.load(sys.stdin)["sessions"]
print("%.0f sessions/s, %d/%d established, set-up p50 %.1f ms" % (s["per_second"], s["established"], s["requested"], s["setup_latency"]["p50_ms"]))')
  echo "nodes=$n: $rate"
  kill "$lb_pid" "${node_pids[@]}"; wait "$lb_pid" "${node_pids[@]}" 2>/dev/null || true
done

# Restart survival: a node with $RESTORED sessions is stopped (SIGTERM) and started again; the time
# from the new process's start until the last-created session answers 200 again.
rport=$(port)
redis-server --port "$rport" --bind 127.0.0.1 --save "" --appendonly no --dir "$work" >/dev/null & pids+=($!)
until redis-cli -p "$rport" ping >/dev/null 2>&1; do sleep 0.02; done
p=$(port)
node_args=(--listen "127.0.0.1:$p" --node-id 01 --registry "redis://127.0.0.1:$rport/" --log-level warn
  --max-sessions 0 --max-sessions-per-client 0 --session-rate 0)
"$BIN" "${node_args[@]}" & node=$!; pids+=($node)
wait_ok "http://127.0.0.1:$p/healthz"
"$BIN" loadtest --json --target "http://127.0.0.1:$p" --sessions "$RESTORED" --concurrency 64 --actions 1 \
  --interval 10ms >/dev/null
last=$(curl -s -o /dev/null -w '%{redirect_url}' "http://127.0.0.1:$p/")
kill -TERM "$node"; wait "$node" || true
t0=$(now)
"$BIN" "${node_args[@]}" & node=$!; pids+=($node)
until [ "$(curl -s -o /dev/null -w '%{http_code}' "$last")" = 200 ]; do sleep 0.005; done
t1=$(now)
echo "restart: $((RESTORED + 1)) sessions answer again $(python3 -c "print(f'{($t1-$t0)*1000:.0f}')") ms after the new process started"
