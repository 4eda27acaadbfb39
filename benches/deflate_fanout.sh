#!/usr/bin/env bash
# Pub/sub fan-out with permessage-deflate negotiated against without, in the same run, on the
# ~1 KiB JSON message of the corpus (benches/json_corpus.py).
#
#   server: `ringws serve --app pubsub --cores 1 --compression on` confined to SERVER_CPU
#           (heartbeats out of the way: the subscribers never answer pings);
#   client: `ringws bench fanout --payload-file benches/corpus/json-1024.json`, its receiver
#           thread and publisher on CLIENT_CPU: N subscribers, then BURST publishes back to
#           back for deliveries/s. With `--deflate` every subscriber negotiates permessage-deflate
#           and inflates each message it receives (the server compresses each publish once);
#           without it, none offers it and the same server sends the message as it is.
#
# ROUNDS rounds, each running both modes (their order alternating from round to round) against
# a fresh server, so load from anything else on the machine hits both alike. One JSON line per
# run goes to OUT (with the server's and the client's CPU seconds over the run, and the load
# average read right after it), then medians, the ratio, and CPU per delivery on each side.
#
# Usage: benches/deflate_fanout.sh                    (builds target/release/ringws first)
#        NS="1000 5000" ROUNDS=5 OUT=benches/results/deflate_fanout.jsonl benches/deflate_fanout.sh
set -euo pipefail
cd "$(dirname "$0")/.."

BIN=${BIN:-target/release/ringws}
NS=${NS:-"1000 5000"}
ROUNDS=${ROUNDS:-5}
PUBLISHES=${PUBLISHES:-10}
BURST=${BURST:-100}
SERVER_CPU=${SERVER_CPU:-0}
CLIENT_CPU=${CLIENT_CPU:-1}
SOURCES=${SOURCES:-127.0.0.1,127.0.0.2}
OUT=${OUT:-/tmp/ringws-deflate-fanout.jsonl}
WS=127.0.0.1:19111
ADMIN=127.0.0.1:19192
MESSAGE=benches/corpus/json-1024.json

if [[ -z ${BIN_PREBUILT:-} ]]; then cargo build --release --quiet; fi
[[ -f $MESSAGE ]] || python3 benches/json_corpus.py
ulimit -n "$(ulimit -Hn)"

hz=$(getconf CLK_TCK)
client_time=$(mktemp)
# utime + stime of a process, in clock ticks.
cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }

server_pid=
stop_server() {
    if [[ -n $server_pid ]]; then
        kill "$server_pid" 2>/dev/null || true
        wait "$server_pid" 2>/dev/null || true
        server_pid=
    fi
}
trap 'stop_server; rm -f "$client_time"' EXIT

wait_ready() {
    for _ in $(seq 100); do
        if (exec 3<>"/dev/tcp/${ADMIN%:*}/${ADMIN#*:}") 2>/dev/null; then return 0; fi
        sleep 0.05
    done
    echo "server did not come up on $ADMIN" >&2
    return 1
}

: >"$OUT"
for n in $NS; do
    for round in $(seq "$ROUNDS"); do
        modes=(plain deflate)
        ((round % 2 == 0)) && modes=(deflate plain)
        for mode in "${modes[@]}"; do
            taskset -c "$SERVER_CPU" "$BIN" serve --app pubsub --cores 1 --compression on \
                --listen "$WS" --admin-listen "$ADMIN" --ping-interval 1h --log warn >/dev/null 2>&1 &
            server_pid=$!
            wait_ready
            flag=()
            [[ $mode == deflate ]] && flag=(--deflate)
            server_before=$(cpu_ticks "$server_pid")
            line=$(/usr/bin/time -f '%U %S' -o "$client_time" "$BIN" bench fanout --label "$mode" \
                --url "ws://$WS/ws" --admin "$ADMIN" \
                --subscribers "$n" --payload-file "$MESSAGE" --publishes "$PUBLISHES" \
                --burst "$BURST" --threads 1 --pin-cpu "$CLIENT_CPU" --sources "$SOURCES" \
                "${flag[@]}" --json)
            server_s=$(awk -v a="$server_before" -v b="$(cpu_ticks "$server_pid")" -v hz="$hz" 'BEGIN { print (b - a) / hz }')
            client_s=$(awk '{ print $1 + $2 }' "$client_time")
            echo "${line%\}},\"server_cpu_s\":$server_s,\"client_cpu_s\":$client_s,\"loadavg\":\"$(cut -d' ' -f1-3 /proc/loadavg)\"}" | tee -a "$OUT"
            stop_server
            sleep 1
        done
    done
done

python3 - "$OUT" <<'PY'
import json, statistics, sys
runs = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
for n in sorted({r["subscribers"] for r in runs}):
    per = {m: [r for r in runs if r["subscribers"] == n and r["target"] == m] for m in ("plain", "deflate")}
    med = {m: statistics.median(r["deliveries_per_s"] for r in rs) for m, rs in per.items()}
    p50 = {m: statistics.median(r["latency_us"]["p50"] for r in rs) for m, rs in per.items()}
    errors = sum(r["errors"] for rs in per.values() for r in rs)
    ratio = [r["server_deflate_ratio"] for r in per["deflate"] if r.get("server_deflate_ratio")]
    deliveries = lambda r: (r["latency_samples"] + r["burst"]) * r["subscribers"]
    cpu = {m: {side: statistics.median(r[side + "_cpu_s"] * 1e6 / deliveries(r) for r in rs)
               for side in ("server", "client")} for m, rs in per.items()}
    print(f"{n} subscribers, {len(per['plain'])} rounds: deliveries/s median plain {med['plain']:,.0f}, "
          f"deflate {med['deflate']:,.0f} ({med['deflate'] / med['plain']:.1%} of plain); "
          f"1 publish -> all p50 plain {p50['plain'] / 1e3:.1f} ms, deflate {p50['deflate'] / 1e3:.1f} ms; "
          f"compression {statistics.median(ratio) if ratio else 0:.2f}x; errors {errors}")
    print(f"  CPU per delivery over the whole run (connect, single publishes, burst), median: "
          f"server plain {cpu['plain']['server']:.2f} us, deflate {cpu['deflate']['server']:.2f} us; "
          f"client plain {cpu['plain']['client']:.2f} us, deflate {cpu['deflate']['client']:.2f} us")
PY
