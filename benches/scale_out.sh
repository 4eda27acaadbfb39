#!/usr/bin/env bash
# Pub/sub across nodes through Redis (docs/benchmarks.md, "Scale-out (Redis bus)").
#
#   (a) latency: a redis-server and 3 `ringws serve --app pubsub --cores 1 --bus redis://...`
#       nodes; `ringws bench fanout` spreads N subscribers (each of SUBS: 3 = one per node, where
#       the hop through the node is all there is; thousands, where each node's fan-out to its
#       share adds to it) round-robin over the 3 nodes and
#       POSTs every publish to node A's admin listener, so every delivery, node A's included,
#       comes back through Redis. The same run times each publish on a plain Redis subscriber
#       of the channel (--redis): the floor, client -> node A -> Redis -> a subscriber. Figures:
#       per node and overall publish -> delivery p50/p99 (PUBLISHES one at a time) and
#       deliveries/s (BURST back to back).
#   (b) CPU: one node, CPU_SUBS subscribers, the same run with `--bus local` and with the Redis
#       bus, alternated in each round; `--server-pid` reads the node's utime+stime from
#       /proc/PID/stat just before and after the burst: server CPU per delivery. The Redis
#       bus's threads are in the same process, so they are counted.
#
# RLIMIT_NOFILE is capped at 20,000 per process: SUBS and CPU_SUBS stay under it, connecting
# from several 127.0.0.x addresses. ROUNDS rounds of each; one JSON line per run goes to OUT
# (with "part", "bus" and the load average), then the medians and ratios are printed.
#
# Usage: benches/scale_out.sh                      (builds target/release/ringws first)
#        ROUNDS=5 SUBS="3 9000" CPU_SUBS=10000 OUT=scale_out.jsonl BIN_PREBUILT=1 benches/scale_out.sh
set -euo pipefail
cd "$(dirname "$0")/.."

BIN=${BIN:-target/release/ringws}
ROUNDS=${ROUNDS:-3}
SUBS=${SUBS:-"3 3000"}
PUBLISHES=${PUBLISHES:-200}
BURST=${BURST:-100}
CPU_SUBS=${CPU_SUBS:-5000}
CPU_BURST=${CPU_BURST:-200}
PAYLOAD=${PAYLOAD:-16}
SOURCES=${SOURCES:-127.0.0.1,127.0.0.2,127.0.0.3,127.0.0.4}
OUT=${OUT:-$(mktemp /tmp/scale_out.XXXXXX.jsonl)}
REDIS_PORT=${REDIS_PORT:-19279}
# Node k listens on ws 1921k and admin 1929k.
WS_BASE=19210
ADMIN_BASE=19290

if [[ -z ${BIN_PREBUILT:-} ]]; then cargo build --release --quiet; fi
ulimit -n "$(ulimit -Hn)"

pids=()
stop_all() {
    for pid in "${pids[@]}"; do
        kill "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done
    pids=()
}
redis_pid=
stop_redis() {
    stop_all
    if [[ -n $redis_pid ]]; then
        kill "$redis_pid" 2>/dev/null || true
        wait "$redis_pid" 2>/dev/null || true
    fi
}
trap stop_redis EXIT

port_free() {
    ! ss -ltnH "( sport = :$1 )" | grep -q .
}

wait_port() {
    for _ in $(seq 200); do
        if (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then return 0; fi
        sleep 0.05
    done
    echo "nothing came up on port $1" >&2
    return 1
}

# node K BUS: starts node K (ws 1921K, admin 1929K) on BUS; its pid is appended to pids.
node() {
    local k=$1 bus=$2
    for port in $((WS_BASE + k)) $((ADMIN_BASE + k)); do
        port_free "$port" || { echo "port $port is in use: stop what listens there" >&2; exit 1; }
    done
    "$BIN" serve --app pubsub --cores 1 --bus "$bus" \
        --listen "127.0.0.1:$((WS_BASE + k))" --admin-listen "127.0.0.1:$((ADMIN_BASE + k))" \
        --max-connections 19900 --ping-interval 1h --log warn >/dev/null 2>&1 &
    pids+=($!)
    wait_port $((ADMIN_BASE + k))
}

# record PART BUS JSON: one line to OUT; a failed run (no JSON) is said and skipped.
record() {
    if [[ ${3:0:1} != "{" ]]; then
        echo "a $1 run on the $2 bus failed; it is left out" >&2
        return
    fi
    echo "${3%\}},\"part\":\"$1\",\"round\":$round,\"bus\":\"$2\",\"loadavg\":\"$(cut -d' ' -f1-3 /proc/loadavg)\"}" >>"$OUT"
}

port_free "$REDIS_PORT" || { echo "port $REDIS_PORT is in use" >&2; exit 1; }
redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save "" --appendonly no \
    --loglevel warning >/dev/null 2>&1 &
redis_pid=$!
wait_port "$REDIS_PORT"
REDIS=127.0.0.1:$REDIS_PORT

for round in $(seq "$ROUNDS"); do
    echo "round $round/$ROUNDS" >&2
    # (a) 3 nodes, subscribers on all three, publishes on node A.
    for k in 1 2 3; do node "$k" "redis://$REDIS/"; done
    for n in $SUBS; do
        line=$("$BIN" bench fanout --label "3 nodes" \
            --url "ws://127.0.0.1:$((WS_BASE + 1))/ws" --admin "127.0.0.1:$((ADMIN_BASE + 1))" \
            --url "ws://127.0.0.1:$((WS_BASE + 2))/ws" --admin "127.0.0.1:$((ADMIN_BASE + 2))" \
            --url "ws://127.0.0.1:$((WS_BASE + 3))/ws" --admin "127.0.0.1:$((ADMIN_BASE + 3))" \
            --redis "$REDIS" --topic "xnode-$n" --subscribers "$n" --payload "$PAYLOAD" \
            --publishes "$PUBLISHES" --burst "$BURST" --threads 1 --sources "$SOURCES" \
            --server-pid "${pids[0]}" --server-pid "${pids[1]}" --server-pid "${pids[2]}" \
            --json) || true
        record latency redis "$line"
    done
    stop_all
    # (b) one node, the same subscribers on each bus; the order alternates between rounds.
    buses=("local" "redis://$REDIS/")
    if ((round % 2 == 0)); then buses=("redis://$REDIS/" "local"); fi
    for bus in "${buses[@]}"; do
        node 1 "$bus"
        redis_flag=()
        # With the Redis bus, wait for the node's subscription (else the first publish races it).
        if [[ $bus != local ]]; then redis_flag=(--redis "$REDIS"); fi
        line=$("$BIN" bench fanout --label "$bus" \
            --url "ws://127.0.0.1:$((WS_BASE + 1))/ws" --admin "127.0.0.1:$((ADMIN_BASE + 1))" \
            "${redis_flag[@]}" --topic cpu --subscribers "$CPU_SUBS" --payload "$PAYLOAD" \
            --publishes 20 --burst "$CPU_BURST" --threads 1 --sources "$SOURCES" \
            --server-pid "${pids[0]}" --json) || true
        record cpu "${bus%%:*}" "$line"
        stop_all
    done
done

echo "runs: $OUT" >&2
python3 - "$OUT" <<'PY'
import json, statistics, sys
runs = [json.loads(l) for l in open(sys.argv[1])]
med = statistics.median
lat = [r for r in runs if r["part"] == "latency"]
cpu = [r for r in runs if r["part"] == "cpu"]
for subs in sorted({r["subscribers"] for r in lat}):
    rs = [r for r in lat if r["subscribers"] == subs]
    print(f"(a) 3 nodes, {subs} subscribers, {len(rs)} runs, medians:")
    f50 = med(r["redis_floor"]["latency_us"]["p50"] for r in rs)
    f99 = med(r["redis_floor"]["latency_us"]["p99"] for r in rs)
    print(f"  raw redis subscriber (floor): p50 {f50:.0f} us, p99 {f99:.0f} us")
    for k in range(len(rs[0]["nodes"])):
        p50 = med(r["nodes"][k]["latency_us"]["p50"] for r in rs)
        p99 = med(r["nodes"][k]["latency_us"]["p99"] for r in rs)
        rate = med(r["nodes"][k]["deliveries_per_s"] for r in rs)
        print(f"  node {'ABC'[k]} ({rs[0]['nodes'][k]['subscribers']} subscribers): p50 {p50:.0f} us "
              f"({p50 / f50:.2f}x the floor), p99 {p99:.0f} us ({p99 / f99:.2f}x), {rate:.0f} deliveries/s")
    p50 = med(r["latency_us"]["p50"] for r in rs)
    p99 = med(r["latency_us"]["p99"] for r in rs)
    print(f"  all subscribers: p50 {p50:.0f} us ({p50 / f50:.2f}x), p99 {p99:.0f} us ({p99 / f99:.2f}x), "
          f"{med(r['deliveries_per_s'] for r in rs):.0f} deliveries/s; "
          f"server CPU {med(r['server_cpu_ns_per_delivery'] for r in rs):.0f} ns/delivery (3 nodes); "
          f"errors {sum(r['errors'] for r in rs)}")
if cpu:
    by = {b: [r for r in cpu if r["bus"] == b] for b in ("local", "redis")}
    print(f"(b) 1 node, {cpu[0]['subscribers']} subscribers, burst of {cpu[0]['burst']}, medians:")
    ns = {}
    for b, rs in by.items():
        ns[b] = med(r["server_cpu_ns_per_delivery"] for r in rs)
        print(f"  {b:5} bus: {ns[b]:.1f} ns CPU per delivery "
              "(" + ", ".join("%.1f" % r["server_cpu_ns_per_delivery"] for r in rs) + "), "
              f"{med(r['deliveries_per_s'] for r in rs):.0f} deliveries/s, errors {sum(r['errors'] for r in rs)}")
    # Per round: the two variants ran back to back, so their ratio shares the machine's load.
    local = {r["round"]: r["server_cpu_ns_per_delivery"] for r in by["local"]}
    ratios = [r["server_cpu_ns_per_delivery"] / local[r["round"]]
              for r in by["redis"] if r["round"] in local]
    print("  redis / local, per round: " + ", ".join("%.2f" % x for x in ratios) + f"; median {med(ratios):.2f}")
PY
