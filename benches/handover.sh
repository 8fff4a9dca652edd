#!/usr/bin/env bash
# Worker-pool hand-over under load (issue 15): a release gateway in connected mode with the counter
# site, two `counter` worker processes, and the load generator clicking in 100 sessions.
#   1. SIGKILL one worker mid-load: its sessions move to the other (after --backend-grace 2s, and with
#      --backend-grace 0).
#   2. SIGTERM one worker mid-load: it drains (UI_BACKEND_DRAIN_TIMEOUT=2) and exits; its sessions move.
# Prints the load generator's report for each, and the hand-over time: from the worker's exit until
# ui_backend_handovers_total counts every session it held.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --quiet -p ui-gateway --bin ui-gateway -p ui-gateway-client --example counter
bin=target/release/ui-gateway
worker=target/release/examples/counter
port=${PORT:-18480}
url=http://127.0.0.1:$port

metric() { curl -s "$url/metrics" | awk -v m="$1" 'index($0, m) == 1 { s += $NF } END { print s + 0 }'; }

run() { # $1 = scenario name, $2 = signal, $3 = --backend-grace
    "$bin" --mode connected --site examples/counter_backend/site --listen 127.0.0.1:$port --log-level error \
        --backend-grace "$3" &
    gw=$!
    sleep 0.5
    UI_BACKEND_URL=ws://127.0.0.1:$port/backend UI_BACKEND_WORKER=a UI_BACKEND_DRAIN_TIMEOUT=2 RUST_LOG=warn "$worker" &
    a=$!
    sleep 0.3
    UI_BACKEND_URL=ws://127.0.0.1:$port/backend UI_BACKEND_WORKER=b RUST_LOG=warn "$worker" &
    b=$!
    sleep 0.3
    "$bin" loadtest --target "$url" --sessions 100 --concurrency 20 --actions 80 --interval 50ms \
        --max-error-rate 0 > /tmp/handover-$1.txt &
    lt=$!
    sleep 1.5
    held=$(metric 'ui_backend_worker_sessions{worker="a"}')
    before=$(metric ui_backend_handovers_total)
    kill -s "$2" $a
    # Drain: the worker keeps its sessions for its drain time, then exits; the hand-over starts there.
    wait $a 2>/dev/null || true
    t0=$(date +%s.%N)
    while [ "$(metric ui_backend_handovers_total)" -lt $((before + held)) ]; do sleep 0.005; done
    t1=$(date +%s.%N)
    wait $lt && result=ok || result=FAILED
    echo "== $1 ($2): worker a held $held sessions; all moved $(echo "($t1 - $t0) * 1000" | bc -l | cut -c1-7) ms after it exited; loadtest $result"
    grep -E '^(actions|round trip|errors)' /tmp/handover-$1.txt
    kill $b $gw 2>/dev/null || true
    wait $gw 2>/dev/null || true
    sleep 0.3
}

# A named worker that dies keeps its sessions for the grace (it may come back with its state):
run kill-grace-2s KILL 2s
# Without a grace its sessions move at once:
run kill-grace-0 KILL 0s
run drain TERM 2s
