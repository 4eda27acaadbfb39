#!/usr/bin/env bash
# Pub/sub fan-out: ringws against the floor, with the same client.
#
#   ringws: `ringws serve --app pubsub --cores 1` confined to SERVER_CPU, heartbeats out of the
#           way (--ping-interval 1h: the subscribers never answer pings, and the floor sends none).
#   floor:  `ringws bench fanout-floor`, one thread on SERVER_CPU writing each published frame
#           to every socket with a plain loop of blocking send(2) calls.
#   client: `ringws bench fanout` with its receiver thread pinned to CLIENT_CPU: N subscribers
#           over several 127.0.0.x source addresses, latency of 1 publish -> all subscribers
#           (PUBLISHES samples), then BURST publishes back to back for deliveries/s.
#
# For each N and payload, ROUNDS rounds alternate ringws and the floor, so load from anything
# else on the machine hits both alike. One JSON line per run goes to OUT, with the load average
# read right after the run.
#
# Usage: benches/fanout.sh                       (builds target/release/ringws first)
#        NS="1000 19000" PAYLOADS=16 ROUNDS=5 OUT=fanout.jsonl benches/fanout.sh
set -euo pipefail
cd "$(dirname "$0")/.."

BIN=${BIN:-target/release/ringws}
NS=${NS:-"1000 10000 19000"}
PAYLOADS=${PAYLOADS:-"16 1024"}
ROUNDS=${ROUNDS:-3}
PUBLISHES=${PUBLISHES:-100}
BURST=${BURST:-50}
SERVER_CPU=${SERVER_CPU:-0}
CLIENT_CPU=${CLIENT_CPU:-1}
SOURCES=${SOURCES:-127.0.0.1,127.0.0.2,127.0.0.3,127.0.0.4}
OUT=${OUT:-/dev/stdout}
WS=127.0.0.1:19101
ADMIN=127.0.0.1:19191

if [[ -z ${BIN_PREBUILT:-} ]]; then cargo build --release --quiet; fi
ulimit -n "$(ulimit -Hn)"

server_pid=
stop_server() {
    if [[ -n $server_pid ]]; then
        kill "$server_pid" 2>/dev/null || true
        wait "$server_pid" 2>/dev/null || true
        server_pid=
    fi
}
trap stop_server EXIT

wait_ready() {
    for _ in $(seq 100); do
        if (exec 3<>"/dev/tcp/${ADMIN%:*}/${ADMIN#*:}") 2>/dev/null; then return 0; fi
        sleep 0.05
    done
    echo "server did not come up on $ADMIN" >&2
    return 1
}

port_free() {
    ! ss -ltnH "( sport = :${1#*:} )" | grep -q .
}

for n in $NS; do
    for payload in $PAYLOADS; do
        for round in $(seq "$ROUNDS"); do
            for target in ringws floor; do
                # SO_REUSEPORT would let a leftover server share the port and take half the load.
                for addr in "$WS" "$ADMIN"; do
                    port_free "$addr" || { echo "$addr is in use: stop what listens there" >&2; exit 1; }
                done
                if [[ $target == ringws ]]; then
                    taskset -c "$SERVER_CPU" "$BIN" serve --app pubsub --cores 1 \
                        --url "ws://$WS/ws" --admin-listen "$ADMIN" --max-connections 19900 \
                        --ping-interval 1h --log warn >/dev/null 2>&1 &
                else
                    taskset -c "$SERVER_CPU" "$BIN" bench fanout-floor \
                        --url "ws://$WS/ws" --admin "$ADMIN" --pin-cpu "$SERVER_CPU" >/dev/null 2>&1 &
                fi
                server_pid=$!
                wait_ready
                line=$("$BIN" bench fanout --label "$target" --url "ws://$WS/ws" --admin "$ADMIN" \
                    --subscribers "$n" --payload "$payload" --publishes "$PUBLISHES" \
                    --burst "$BURST" --threads 1 --pin-cpu "$CLIENT_CPU" \
                    --sources "$SOURCES" --json)
                echo "${line%\}},\"loadavg\":\"$(cut -d' ' -f1-3 /proc/loadavg)\"}" >>"$OUT"
                stop_server
                sleep 1
            done
        done
    done
done
