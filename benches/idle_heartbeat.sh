#!/usr/bin/env bash
# The timer wheel's cost: server CPU of an idle ringws holding N upgraded connections, with a
# 1 s ping interval (every connection pinged every second) against a 30 s one, in one run.
# Each connection has exactly one deadline on its core's wheel, so the work should follow the
# pings sent (O(1) per timer), not the number of connections held.
#
#   bash benches/idle_heartbeat.sh            # CONNS=19000 WINDOW=20 (about 3 minutes)
#
# Prints one JSON line per configuration and appends them to benches/results/idle_heartbeat.jsonl.
set -euo pipefail
cd "$(dirname "$0")/.."

CONNS=${CONNS:-19000}
WINDOW=${WINDOW:-20}
PORT=${PORT:-9811}
ADMIN=${ADMIN:-9812}
SOURCES=127.0.0.1,127.0.0.2,127.0.0.3,127.0.0.4,127.0.0.5,127.0.0.6,127.0.0.7,127.0.0.8

if [ -z "${BIN:-}" ]; then
  cargo build --release --quiet
  BIN=target/release/ringws
fi
CLK_TCK=$(getconf CLK_TCK)
mkdir -p benches/results
pids=()
trap 'kill "${pids[@]}" 2>/dev/null || true' EXIT

cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
metric() { # sum of a metric family on the admin listener
  curl -s "http://127.0.0.1:$ADMIN/metrics" | awk -v m="$1" '$1 ~ "^"m"({|$)" {s += $2} END {print s + 0}'
}

measure() {
  local interval=$1 conns=$2
  taskset -c 0 "$BIN" serve --listen "127.0.0.1:$PORT" --admin-listen "127.0.0.1:$ADMIN" --cores 1 \
    --app echo --ping-interval "$interval" --pong-timeout 10s --log warn >/dev/null &
  local server=$!
  pids+=("$server")
  for _ in $(seq 100); do curl -sf "http://127.0.0.1:$ADMIN/healthz" >/dev/null && break; sleep 0.1; done
  local hold=$((WINDOW + 40))
  taskset -c 1 "$BIN" bench idle --url "ws://127.0.0.1:$PORT/" --conns "$conns" --sources "$SOURCES" \
    --hold "$hold" --json >/tmp/ringws-idle-bench.json 2>/dev/null &
  local bench=$!
  pids+=("$bench")
  for _ in $(seq 600); do [ "$(metric ringws_connections_open)" -ge "$conns" ] && break; sleep 0.1; done
  local open
  open=$(metric ringws_connections_open)
  sleep 3 # let the connection burst's first pings spread out
  local t0 p0 c0 t1 p1 c1
  t0=$(date +%s.%N); c0=$(cpu_ticks "$server"); p0=$(metric ringws_heartbeat_pings_sent_total)
  sleep "$WINDOW"
  t1=$(date +%s.%N); c1=$(cpu_ticks "$server"); p1=$(metric ringws_heartbeat_pings_sent_total)
  local timeouts
  timeouts=$(metric ringws_heartbeat_timeouts_total)
  kill "$bench" "$server" 2>/dev/null || true
  wait "$bench" "$server" 2>/dev/null || true
  python3 - "$interval" "$open" "$t0" "$t1" "$c0" "$c1" "$p0" "$p1" "$CLK_TCK" "$timeouts" <<'PY'
import json, sys
interval, open_, t0, t1, c0, c1, p0, p1, tck, timeouts = sys.argv[1:]
secs = float(t1) - float(t0)
cpu_s = (float(c1) - float(c0)) / float(tck)
pings = float(p1) - float(p0)
print(json.dumps({
    "bench": "idle_heartbeat", "ping_interval": interval, "connections": int(float(open_)),
    "window_s": round(secs, 2), "server_cpu_percent": round(100 * cpu_s / secs, 2),
    "pings_per_s": round(pings / secs, 1),
    "server_cpu_us_per_ping": round(1e6 * cpu_s / pings, 2) if pings else None,
    "heartbeat_timeouts": int(float(timeouts)),
}))
PY
}

{
  measure 30s "$CONNS"
  measure 1s "$CONNS"
  measure 1s $((CONNS / 4))
} | tee -a benches/results/idle_heartbeat.jsonl
