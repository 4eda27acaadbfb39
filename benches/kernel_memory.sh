#!/usr/bin/env bash
# Kernel memory per idle upgraded connection: ringws against a floor server that holds the same
# connections with nothing pending (benches/floor_server.py), one after the other in one run,
# with the same client (`ringws bench idle`, 8 loopback source addresses). The client's half of
# each connection is the same in both, so the difference in /proc/meminfo Slab growth per
# connection is what ringws adds over the bare socket: its pending io_uring operation.
#
#   bash benches/kernel_memory.sh       # CONNS=19000 RUNS=3 (about 3 minutes)
set -euo pipefail
cd "$(dirname "$0")/.."
CONNS=${CONNS:-19000}
RUNS=${RUNS:-3}
PORT=${PORT:-9821}
SOURCES=127.0.0.1,127.0.0.2,127.0.0.3,127.0.0.4,127.0.0.5,127.0.0.6,127.0.0.7,127.0.0.8
if [ -z "${BIN:-}" ]; then
  cargo build --release --quiet
  BIN=target/release/ringws
fi
pids=()
trap 'kill "${pids[@]}" 2>/dev/null || true' EXIT
slab_kb() { awk '/^Slab:/ {print $2}' /proc/meminfo; }

hold() { # name; starts the server named, opens CONNS, prints the slab growth in bytes
  local name=$1 server
  if [ "$name" = ringws ]; then
    taskset -c 0 "$BIN" serve --listen "127.0.0.1:$PORT" --admin-listen off --cores 1 --app echo --log error >/dev/null 2>&1 &
  else
    taskset -c 0 python3 benches/floor_server.py "127.0.0.1:$PORT" >/dev/null 2>&1 &
  fi
  server=$!
  pids+=("$server")
  sleep 1
  sync; echo 2 > /proc/sys/vm/drop_caches 2>/dev/null || true
  local before after
  before=$(slab_kb)
  taskset -c 1 "$BIN" bench idle --url "ws://127.0.0.1:$PORT/" --conns "$CONNS" --sources "$SOURCES" --hold 8 --json \
    >/tmp/ringws-kmem.json 2>/dev/null &
  local bench=$!
  pids+=("$bench")
  sleep 6 # all open well within this; the hold lasts 8 s
  after=$(slab_kb)
  wait "$bench" 2>/dev/null || true
  local opened
  opened=$(python3 -c "import json; print(json.load(open('/tmp/ringws-kmem.json')).get('opened', 0))")
  kill "$server" 2>/dev/null || true
  wait "$server" 2>/dev/null || true
  sleep 2
  echo "$name $(( (after - before) * 1024 )) $opened"
}

for _ in $(seq "$RUNS"); do
  hold floor
  hold ringws
done | python3 -c '
import json, statistics, sys
rows = [l.split() for l in sys.stdin if l.strip()]
by = {}
for name, growth, opened in rows:
    by.setdefault(name, []).append(int(growth) / max(int(opened), 1))
floor, ring = statistics.median(by["floor"]), statistics.median(by["ringws"])
# Each repetition measures floor then ringws back to back: the per-pair difference is the
# figure least exposed to other work on the machine.
pairs = [r - f for f, r in zip(by["floor"], by["ringws"])]
print(json.dumps({"bench": "kernel_memory", "connections": int(rows[0][2]),
    "slab_bytes_per_conn_floor": round(floor), "slab_bytes_per_conn_ringws": round(ring),
    "ringws_over_floor_bytes_median_of_pairs": round(statistics.median(pairs)),
    "pairs": [round(p) for p in pairs], "runs": {k: [round(x) for x in v] for k, v in by.items()}}))
' | tee -a benches/results/kernel_memory.jsonl
