#!/usr/bin/env bash
# Issue 19's two measures on a copy of the Contacts app (examples/contacts), for one or more builds:
#
#   1. session creations/s: `wrk -t1 -c4 -d5s` on `GET /` (each request builds a session and is
#      answered 302), best of ROUNDS runs, a fresh server per run; also the server's CPU time per
#      creation in each run (from /proc/PID/stat);
#   2. RSS growth per session: a fresh server, WARMUP sessions, then SESSIONS more `GET /` sessions
#      over one keep-alive connection (curl); (VmRSS after − VmRSS before) ÷ SESSIONS.
#
# Several builds are measured alternately in the same run (a, b, a, b, …), so their ratio holds on a
# noisy shared machine even when the absolute figures do not.
#
#   benches/contacts.sh [BINARY ...]        # default: target/release/ui-gateway
#   ROUNDS=2 SESSIONS=2000 WARMUP=100 RUN_SECONDS=5 benches/contacts.sh old/ui-gateway target/release/ui-gateway
#
# Needs wrk (apt-get install wrk) and curl. Without wrk, `cargo bench --bench http_create` with
# CREATE_SITE=contacts gives the creation rate from inside one process.
set -euo pipefail

here=$(cd "$(dirname "$0")/.." && pwd)
ROUNDS=${ROUNDS:-2}
SESSIONS=${SESSIONS:-2000}
WARMUP=${WARMUP:-100}
SECONDS_PER_RUN=${RUN_SECONDS:-5}
bins=("$@")
[ ${#bins[@]} -gt 0 ] || bins=("$here/target/release/ui-gateway")
command -v wrk >/dev/null || { echo "wrk is not installed (apt-get install wrk)" >&2; exit 1; }

work=$(mktemp -d)
server=""
cleanup() {
    [ -n "$server" ] && kill "$server" 2>/dev/null && wait "$server" 2>/dev/null
    rm -rf "$work"
}
trap cleanup EXIT
cp -r "$here/examples/contacts" "$work/site"

port=$((20000 + RANDOM % 20000))

# start BINARY: a fresh server on $port serving the copy, no creation caps (every request comes
# from 127.0.0.1), logs to $work/server.log.
start() {
    port=$((port + 1))
    "$1" --site "$work/site" --listen "127.0.0.1:$port" --max-sessions 0 --max-sessions-per-client 0 \
        --session-rate 0 --log-level warn >"$work/server.log" 2>&1 &
    server=$!
    for _ in $(seq 100); do
        curl -sf -o /dev/null "http://127.0.0.1:$port/healthz" && return 0
        sleep 0.1
    done
    echo "server $1 did not start:" >&2
    cat "$work/server.log" >&2
    exit 1
}

stop() {
    kill "$server"
    wait "$server" 2>/dev/null || true
    server=""
}

# The server's user + system CPU time so far, in clock ticks: CPU per creation holds up better than
# the rate when other work shares the machine.
cpu_ticks() { awk '{print $14 + $15}' "/proc/$server/stat"; }

rss_kib() { awk '/^VmRSS:/ {print $2}' "/proc/$server/status"; }

# get N: N `GET /` over one keep-alive connection.
get() {
    local cfg="$work/curl.cfg"
    : >"$cfg"
    for _ in $(seq "$1"); do
        printf 'url = "http://127.0.0.1:%s/"\noutput = /dev/null\n' "$port" >>"$cfg"
    done
    curl -s -K "$cfg"
}

declare -A best rss cpus
for round in $(seq "$ROUNDS"); do
    for bin in "${bins[@]}"; do
        start "$bin"
        cpu0=$(cpu_ticks)
        out=$(wrk -t1 -c4 -d"${SECONDS_PER_RUN}s" "http://127.0.0.1:$port/")
        cpu1=$(cpu_ticks)
        stop
        rate=$(awk '/^Requests\/sec:/ {print $2}' <<<"$out")
        requests=$(awk '/requests in/ {print $1}' <<<"$out")
        cpu=$(awk -v a="$cpu0" -v b="$cpu1" -v n="$requests" -v hz="$(getconf CLK_TCK)" \
            'BEGIN {printf "%.0f", (b - a) / hz * 1e6 / n}')
        cpus[$bin]="${cpus[$bin]:-}${cpus[$bin]:+ }$cpu"
        echo "round $round  $bin  wrk: ${rate} creations/s, server CPU ${cpu} µs per creation"
        if [ -z "${best[$bin]:-}" ] || awk -v a="$rate" -v b="${best[$bin]}" 'BEGIN {exit !(a > b)}'; then
            best[$bin]=$rate
        fi
    done
done
for bin in "${bins[@]}"; do
    start "$bin"
    get "$WARMUP"
    sleep 1
    before=$(rss_kib)
    get "$SESSIONS"
    sleep 1
    after=$(rss_kib)
    stop
    rss[$bin]=$(awk -v a="$after" -v b="$before" -v n="$SESSIONS" 'BEGIN {printf "%.1f", (a - b) / n}')
    echo "$bin  RSS ${before} KiB -> ${after} KiB over $SESSIONS sessions"
done

echo
printf '%-40s %18s %22s %s\n' build "creations/s (best)" "RSS KiB per session" "server CPU µs per creation (each run)"
for bin in "${bins[@]}"; do
    printf '%-40s %18s %22s %s\n' "$bin" "${best[$bin]}" "${rss[$bin]}" "${cpus[$bin]}"
done
