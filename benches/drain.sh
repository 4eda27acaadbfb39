#!/usr/bin/env bash
# The reconnect rate a fleet's remaining node sees when one node drains, with and without
# drain_spread. Two ringws nodes (one core each) behind deploy/haproxy/ringws-nodes.cfg; CONNS
# clients (benches/drain_client.py: answer the close, connect again at once, through haproxy)
# spread over both; node A gets SIGTERM and its clients' reconnects land on node B. For each
# drain_spread in SPREADS it records, from the clients' own clocks, when each reconnect
# succeeded relative to the signal: the peak over any 1 s window, and the time from the first to
# the last; node B's handshake counter cross-checks the count.
#
#   bash benches/drain.sh   # CONNS=8000 CLIENTS=2 SPREADS="0s 10s" DRAIN_DELAY=2s (about 2 minutes)
#
# 8,000 is what one haproxy can proxy under the 20,000 open-file limit of this machine (two
# descriptors per connection). Prints one JSON line per spread and appends them to
# benches/results/drain.jsonl. Needs haproxy and python3.
set -euo pipefail
cd "$(dirname "$0")/.."

CONNS=${CONNS:-8000}
SPREADS=${SPREADS:-"0s 10s"}
DRAIN_DELAY=${DRAIN_DELAY:-2s}
DRAIN_TIMEOUT=${DRAIN_TIMEOUT:-30s}
CLIENTS=${CLIENTS:-2}
PROXY_PORT=${PROXY_PORT:-9840}
export BASE_PORT=${BASE_PORT:-9841} ADMIN_BASE_PORT=${ADMIN_BASE_PORT:-9851}
SOURCES=${SOURCES:-127.0.0.2,127.0.0.3,127.0.0.4,127.0.0.5}
# The whole run is bounded: every wait below gives up after this many seconds.
WAIT_S=${WAIT_S:-120}

if [ -z "${BIN:-}" ]; then
  cargo build --release --quiet
  BIN=target/release/ringws
fi
HAPROXY=${HAPROXY:-$(command -v haproxy || echo /usr/sbin/haproxy)}
work=$(mktemp -d)
mkdir -p benches/results
pids=()
cleanup() {
  kill "${pids[@]}" 2>/dev/null || true
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

metric() { # sum of a metric family on admin port $1
  curl -s "http://127.0.0.1:$1/metrics" | awk -v m="$2" '$1 ~ "^"m"({|$)" {s += $2} END {print s + 0}'
}
wait_for() { # wait_for DESCRIPTION COMMAND...: until COMMAND succeeds, at most WAIT_S seconds
  local what=$1
  shift
  for _ in $(seq $((WAIT_S * 10))); do
    "$@" && return 0
    sleep 0.1
  done
  echo "gave up waiting for $what" >&2
  exit 1
}

# haproxy: the committed multi-node config, its node lines replaced by the two nodes here.
deploy/ringws-nodes.sh haproxy 2 >"$work/nodes"
awk -v port="$PROXY_PORT" -v nodes="$work/nodes" '
  /# ringws-listen$/ { sub(/bind .*/, "bind 127.0.0.1:" port "  # ringws-listen") }
  /# ringws-maxconn$/ { sub(/maxconn [0-9]+/, "maxconn 9000") }
  /# ringws-node$/ { if (!done) { while ((getline l < nodes) > 0) print l; done = 1 } next }
  { print }' deploy/haproxy/ringws-nodes.cfg >"$work/haproxy.cfg"
"$HAPROXY" -c -q -f "$work/haproxy.cfg"

node() { # node I SPREAD: start ringws node I (1 or 2); its pid in $started
  local i=$1 spread=$2
  "$BIN" serve --listen "127.0.0.1:$((BASE_PORT + i - 1))" \
    --admin-listen "127.0.0.1:$((ADMIN_BASE_PORT + i - 1))" --cores 1 --app echo --log warn \
    --max-connections 20000 --drain-delay "$DRAIN_DELAY" --drain-spread "$spread" \
    --drain-timeout "$DRAIN_TIMEOUT" >/dev/null 2>"$work/node$i.log" &
  started=$!
  pids+=("$started")
}

measure() {
  local spread=$1
  local a b proxy client
  node 1 "$spread"
  a=$started
  node 2 "$spread"
  b=$started
  local admin_a=$ADMIN_BASE_PORT admin_b=$((ADMIN_BASE_PORT + 1))
  wait_for "the nodes" curl -sf "http://127.0.0.1:$admin_a/readyz" -o /dev/null
  wait_for "the nodes" curl -sf "http://127.0.0.1:$admin_b/readyz" -o /dev/null
  "$HAPROXY" -db -f "$work/haproxy.cfg" >/dev/null 2>"$work/haproxy.log" &
  proxy=$!
  pids+=("$proxy")
  wait_for "haproxy" bash -c "exec 3<>/dev/tcp/127.0.0.1/$PROXY_PORT" 2>/dev/null
  # Several client processes, so that the clients' own CPU does not cap the reconnect storm.
  local clients=() k
  for k in $(seq "$CLIENTS"); do
    python3 benches/drain_client.py --url "ws://127.0.0.1:$PROXY_PORT/" \
      --conns $((CONNS / CLIENTS)) --sources "$SOURCES" --out "$work/client$k.json" \
      --max-seconds $((WAIT_S * 2)) >"$work/client$k.out" 2>"$work/client$k.err" &
    clients+=("$!")
    pids+=("$!")
  done
  for k in $(seq "$CLIENTS"); do
    wait_for "$CONNS connections" grep -qs '^connected' "$work/client$k.out"
  done
  local open_a open_b b_before
  open_a=$(metric "$admin_a" ringws_connections_open)
  open_b=$(metric "$admin_b" ringws_connections_open)
  b_before=$(metric "$admin_b" ringws_handshakes_completed_total)
  local signalled
  signalled=$(date +%s.%N)
  kill -TERM "$a"
  # Node B has taken every client of node A back (or the wait gives up).
  wait_for "node A's clients on node B" bash -c \
    "[ \$(curl -s http://127.0.0.1:$admin_b/metrics | awk '\$1 ~ /^ringws_connections_open/ {s += \$2} END {print s + 0}') -ge $CONNS ]"
  local b_after
  b_after=$(metric "$admin_b" ringws_handshakes_completed_total)
  wait_for "node A to exit" bash -c "! kill -0 $a 2>/dev/null"
  kill -TERM "${clients[@]}"
  wait "${clients[@]}" || true
  kill -TERM "$b" "$proxy" 2>/dev/null || true
  wait "$b" "$proxy" 2>/dev/null || true
  python3 - "$work" "$signalled" "$spread" "$open_a" "$open_b" "$b_before" "$b_after" "$DRAIN_DELAY" <<'EOF'
import glob, json, sys
work, signalled, spread, open_a, open_b, b_before, b_after, delay = sys.argv[1:]
runs = [json.load(open(p)) for p in sorted(glob.glob(work + "/client*.json"))]
t0 = float(signalled)
rec = sorted(t - t0 for r in runs for t in r["reconnects"])
closes = [c for r in runs for c in r["closes"] if c[0] >= t0]
per_s = [0] * (int(rec[-1]) + 1 if rec else 0)
for t in rec:
    per_s[int(t)] += 1
def pct(p):
    return round(rec[min(len(rec) - 1, int(p / 100 * len(rec)))], 2) if rec else None
peak, j = 0, 0
for i, t in enumerate(rec):  # most reconnects within any 1 s window
    while rec[j] < t - 1.0:
        j += 1
    peak = max(peak, i - j + 1)
print(json.dumps({
    "bench": "drain", "drain_spread": spread, "drain_delay": delay,
    "connections": int(float(open_a)) + int(float(open_b)),
    "on_drained_node": int(float(open_a)),
    "closes_1001": sum(1 for c in closes if c[1] == 1001),
    "closes_other": sum(1 for c in closes if c[1] != 1001),
    "reconnects": len(rec),
    "node_b_handshakes": int(float(b_after) - float(b_before)),
    "connect_failures": sum(r["connect_failures"] for r in runs),
    "peak_reconnects_per_s": peak,
    "first_s": pct(0), "p50_s": pct(50), "p95_s": pct(95), "last_s": pct(100),
    "per_s_since_signal": per_s, "client_processes": len(runs),
}))
EOF
}

for spread in $SPREADS; do
  measure "$spread" | tee -a benches/results/drain.jsonl
done
