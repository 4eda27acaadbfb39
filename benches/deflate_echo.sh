#!/usr/bin/env bash
# Server CPU per echo and bytes on the wire, with and without permessage-deflate, on the JSON
# corpus (benches/json_corpus.py): ringws (`--cores 1`, pinned to CPU 0) and, beside it in the
# same run, Node `ws` as the server with perMessageDeflate; the load is Node `ws` clients on
# CPU 1 (NODE_PATH=/usr/share/nodejs, Debian's node-ws).
#
#   bash benches/deflate_echo.sh [SECONDS] [CONNS]
#
# Prints one line per server, size and mode: echoes, server CPU µs per echo (utime+stime from
# /proc), and (ringws) socket bytes sent per echo, from ringws_socket_sent_bytes_total.
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-5}
conns=${2:-50}
export NODE_PATH=/usr/share/nodejs
cargo build --release --quiet
python3 benches/json_corpus.py
hz=$(getconf CLK_TCK)
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }

run() { # server-name pid port size deflate
  local name=$1 pid=$2 port=$3 size=$4 deflate=$5
  local before sent_before out after echoes sent
  before=$(cpu_ticks "$pid")
  sent_before=$(wire_bytes)
  out=$(taskset -c 1 node benches/deflate_echo.js "ws://127.0.0.1:$port/" \
    "benches/corpus/json-$size.json" "$conns" "$secs" "$deflate")
  after=$(cpu_ticks "$pid")
  sent=$(($(wire_bytes) - sent_before))
  [ "$name" = ringws ] || sent=0
  echoes=$(awk '/^echoes/ {print $2}' <<<"$out")
  awk -v n="$name" -v s="$size" -v d="$deflate" -v t=$((after - before)) -v hz="$hz" \
    -v e="$echoes" -v w="$sent" -v x="$(head -1 <<<"$out")" \
    'BEGIN { printf "%-8s %6s B deflate=%s %8d echoes %7.2f us/echo %8.1f B sent/echo (%s)\n", n, s, d, e, t / hz * 1e6 / e, w / e, x }'
}
# ringws's socket bytes sent (frames and handshakes), from its metrics.
wire_bytes() {
  curl -s http://127.0.0.1:9952/metrics | awk '/^ringws_socket_sent_bytes_total/ {s += $2} END {printf "%d", s}'
}

./target/release/ringws serve --listen 127.0.0.1:9951 --admin-listen 127.0.0.1:9952 --app echo \
  --cores 1 --log warn --compression on --compression-min-size 0 >/dev/null 2>&1 &
ringws=$!
cat >/tmp/ringws-node-echo.js <<'JS'
const { WebSocketServer } = require('ws');
new WebSocketServer({ port: Number(process.argv[2]), perMessageDeflate: { threshold: 0 } })
  .on('connection', (ws) => ws.on('message', (data, binary) => ws.send(data, { binary })));
JS
taskset -c 0 node /tmp/ringws-node-echo.js 9953 &
nodeserver=$!
trap 'kill $ringws $nodeserver 2>/dev/null || true' EXIT
taskset -p -c 0 $ringws >/dev/null
sleep 1
for size in 200 1024 16384; do
  for deflate in 0 1; do
    run ringws $ringws 9951 $size $deflate
    run node-ws $nodeserver 9953 $size $deflate
  done
done
