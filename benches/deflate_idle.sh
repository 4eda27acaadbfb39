#!/usr/bin/env bash
# Userspace per idle connection with and without permessage-deflate negotiated: ringws
# (`--compression on`, one core) holds CONNS idle connections from Node `ws`; the growth of its
# VmRSS over the connections is divided by CONNS.
#   bash benches/deflate_idle.sh [CONNS]
set -euo pipefail
cd "$(dirname "$0")/.."
conns=${1:-5000}
export NODE_PATH=/usr/share/nodejs
cargo build --release --quiet
rss() { awk '/^VmRSS/ {print $2 * 1024}' "/proc/$1/status"; }
for deflate in 0 1; do
  ./target/release/ringws serve --listen 127.0.0.1:9961 --admin-listen off --app echo --cores 1 \
    --log warn --compression on >/dev/null 2>&1 &
  server=$!
  sleep 0.5
  base=$(rss $server)
  node benches/deflate_idle.js ws://127.0.0.1:9961/ "$conns" "$deflate" >/tmp/ringws-idle.out &
  client=$!
  for _ in $(seq 600); do grep -q '^open' /tmp/ringws-idle.out && break; sleep 0.1; done
  sleep 1
  held=$(rss $server)
  echo "deflate=$deflate $(cat /tmp/ringws-idle.out): $(((held - base) / conns)) B/conn userspace"
  kill $client $server
  wait $client $server 2>/dev/null || true
done
