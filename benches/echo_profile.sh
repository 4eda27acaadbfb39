#!/usr/bin/env bash
# Where the server's CPU goes in one echo: ringws, the echo floor (benches/peers/echo-floor) and
# fastwebsockets under the same closed-loop load, each sampled with `perf record -g`, their time
# split into the kernel's TCP send path (which on loopback also runs the receiving client
# socket's TCP input), its TCP receive path, and everything else (syscall, io_uring or epoll
# entry, readiness, scheduling, the server's own code).
#
#   bash benches/echo_profile.sh            # 3 rounds, servers alternating, 20 B and 1 KiB
#   RUNS=5 PAYLOADS=20 bash benches/echo_profile.sh
#   SERVERS="ringws echo-floor" bash benches/echo_profile.sh
#
# Needs perf (Debian: apt-get install linux-perf). Prints a markdown table of medians and writes
# one JSON line per measurement to benches/results/echo_profile.jsonl (replaced by each run;
# benches/report.py quotes it in docs/benchmarks.md).
set -euo pipefail

cd "$(dirname "$0")/.."
RUNS=${RUNS:-3}
PAYLOADS=${PAYLOADS:-"20 1024"}
SERVERS=${SERVERS:-"ringws echo-floor fastwebsockets"}
CONNS=${CONNS:-100}
WARMUP=${WARMUP:-2}
DURATION=${DURATION:-6}
SERVER_CPU=${SERVER_CPU:-0}
CLIENT_CPU=${CLIENT_CPU:-1}
PORT=${PORT:-9111}
OUT=benches/results/echo_profile.jsonl

if ! command -v perf >/dev/null; then
    echo "echo_profile.sh: perf is missing (Debian: apt-get install linux-perf)" >&2
    exit 2
fi
mkdir -p benches/results
: >"$OUT"
cargo build --release --quiet
cargo build --release --quiet --locked --manifest-path benches/peers/fastwebsockets-echo/Cargo.toml
cargo build --release --quiet --locked --manifest-path benches/peers/echo-floor/Cargo.toml
RINGWS=$PWD/target/release/ringws
FWS=$PWD/benches/peers/fastwebsockets-echo/target/release/fastwebsockets-echo
FLOOR=$PWD/benches/peers/echo-floor/target/release/echo-floor
TMP=$(mktemp -d /tmp/ringws-profile.XXXXXX)
SERVER_PID=
cleanup() {
    if [[ -n $SERVER_PID ]]; then
        kill "$SERVER_PID" 2>/dev/null || true
    fi
    rm -rf "$TMP"
}
trap cleanup EXIT

# shares PERF_DATA: prints "send recv" — inclusive percentages of the server's samples spent
# under tcp_sendmsg and under tcp_recvmsg.
shares() {
    perf report -i "$1" --children --sort sym --stdio -g none 2>/dev/null | python3 -c '
import re, sys
share = {}
for line in sys.stdin:
    m = re.match(r"\s+([\d.]+)%\s+[\d.]+%\s+\[k\]\s+(\S+)\s*$", line)
    if m:
        share.setdefault(m.group(2), float(m.group(1)))
print(share.get("tcp_sendmsg", 0.0), share.get("tcp_recvmsg", 0.0))
'
}

for PAYLOAD in $PAYLOADS; do
for run in $(seq "$RUNS"); do
    for server in $SERVERS; do
        case $server in
            ringws)
                taskset -c "$SERVER_CPU" "$RINGWS" serve --listen "127.0.0.1:$PORT" --cores 1 \
                    --app echo --admin-listen off --log warn >"$TMP/server.log" 2>&1 &
                ;;
            fastwebsockets)
                taskset -c "$SERVER_CPU" "$FWS" "127.0.0.1:$PORT" >"$TMP/server.log" 2>&1 &
                ;;
            echo-floor)
                taskset -c "$SERVER_CPU" "$FLOOR" "127.0.0.1:$PORT" 1 >"$TMP/server.log" 2>&1 &
                ;;
            *)
                echo "echo_profile.sh: unknown server $server" >&2
                exit 2
                ;;
        esac
        SERVER_PID=$!
        for _ in $(seq 50); do
            grep -q "listening on" "$TMP/server.log" && break
            sleep 0.1
        done
        taskset -c "$CLIENT_CPU" "$RINGWS" bench echo --url "ws://127.0.0.1:$PORT/" \
            --conns "$CONNS" --payload "$PAYLOAD" --warmup "$WARMUP" --duration "$DURATION" \
            --server-pid "$SERVER_PID" --json >"$TMP/bench.json" 2>/dev/null &
        bench_pid=$!
        sleep "$WARMUP"
        # Sample inside the measured window only (it starts after the warm-up).
        perf record -q -g -e cpu-clock -p "$SERVER_PID" -o "$TMP/perf.data" \
            -- sleep "$((DURATION - 1))" >/dev/null 2>&1
        wait "$bench_pid" || true
        kill "$SERVER_PID"
        wait "$SERVER_PID" 2>/dev/null || true
        SERVER_PID=
        read -r send recv < <(shares "$TMP/perf.data")
        python3 - "$TMP/bench.json" "$server" "$run" "$PAYLOAD" "$send" "$recv" >>"$OUT" <<'EOF'
import json, sys
path, server, run, payload, send, recv = sys.argv[1:]
r = json.load(open(path))
cpu = r["server_cpu_us_per_op"]
print(json.dumps({
    "server": server, "run": int(run), "payload": int(payload),
    "msgs_per_s": round(r["msgs_per_s"]), "cpu_us_per_echo": round(cpu, 3),
    "tcp_send_share": float(send) / 100, "tcp_recv_share": float(recv) / 100,
    "errors": r.get("errors_total", 0),
}))
EOF
        tail -n 1 "$OUT" >&2
    done
done
done

python3 - "$OUT" "$RUNS" <<'EOF'
import json, statistics, sys
path, runs = sys.argv[1], int(sys.argv[2])
rows = [json.loads(l) for l in open(path)]
print(f"\nMedians of {runs} rounds:\n")
print("| payload | server | msgs/s | CPU µs/echo | TCP send path | TCP receive path | everything else |")
print("|---:|---|---:|---:|---:|---:|---:|")
for payload, server in sorted({(r["payload"], r["server"]) for r in rows},
                              key=lambda k: (k[0], k[1] != "ringws", k[1] != "echo-floor", k[1])):
    mine = [r for r in rows if r["server"] == server and r["payload"] == payload]
    if not mine:
        continue
    med = lambda f: statistics.median(f(r) for r in mine)
    cpu = med(lambda r: r["cpu_us_per_echo"])
    send = med(lambda r: r["cpu_us_per_echo"] * r["tcp_send_share"])
    recv = med(lambda r: r["cpu_us_per_echo"] * r["tcp_recv_share"])
    rest = med(lambda r: r["cpu_us_per_echo"] * (1 - r["tcp_send_share"] - r["tcp_recv_share"]))
    print(f"| {payload} B | {server} | {med(lambda r: r['msgs_per_s']):,.0f} | {cpu:.2f} | {send:.2f} µs | "
          f"{recv:.2f} µs | {rest:.2f} µs |")
EOF
