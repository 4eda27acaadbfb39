#!/usr/bin/env bash
# Same-run A/B of two ringws revisions (and the echo floor, when built): CPU per echo at each
# payload size, CPU per handshake, and userspace memory per idle connection, interleaved round by
# round so machine noise hits both alike. Prints a table of medians and B/A ratios.
#
#   bash benches/ab.sh BASE_REV [NEW_REV]      # NEW_REV defaults to HEAD
#
# Settings (environment): RUNS=5 rounds, DURATION=5 s windows, WARMUP=1 s, CONNS=100 echo
# connections, PAYLOADS="20 1024 16384", IDLE_CONNS=10000, CONNECT_CONCURRENCY=64,
# SERVER_CPU=0 CLIENT_CPU=1, OUT=benches/results/ab-<stamp>.jsonl.
# Both revisions are built from git (`git archive`) in target/ab-src/, so the working tree may
# be mid-edit. The load generator is NEW_REV's `ringws bench`.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

BASE=${1:?usage: bash benches/ab.sh BASE_REV [NEW_REV]}
NEW=${2:-HEAD}
RUNS=${RUNS:-5}
DURATION=${DURATION:-5}
WARMUP=${WARMUP:-1}
CONNS=${CONNS:-100}
PAYLOADS=${PAYLOADS:-"20 1024 16384"}
IDLE_CONNS=${IDLE_CONNS:-10000}
CONNECT_CONCURRENCY=${CONNECT_CONCURRENCY:-64}
SERVER_CPU=${SERVER_CPU:-0}
CLIENT_CPU=${CLIENT_CPU:-1}
SOURCES=127.0.0.1,127.0.0.2,127.0.0.3,127.0.0.4,127.0.0.5,127.0.0.6,127.0.0.7,127.0.0.8
MAX_CONNECTIONS=$(($(ulimit -Hn) - 100))
STAMP=$(date -u +%Y%m%dT%H%M%SZ)
mkdir -p benches/results
OUT=${OUT:-benches/results/ab-$STAMP.jsonl}
LOGDIR=$(mktemp -d /tmp/ringws-ab.XXXXXX)

say() { printf '[%s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

PIDS=()
cleanup() {
    local pid
    for pid in "${PIDS[@]}"; do kill -KILL "$pid" 2>/dev/null || true; done
}
trap cleanup EXIT

# build REV NAME: builds that revision's release binary at target/ab-NAME/release/ringws.
build() {
    local rev=$1 name=$2 src=$ROOT/target/ab-src/$2
    rm -rf "$src"
    mkdir -p "$src"
    git archive "$rev" | tar -x -C "$src"
    CARGO_TARGET_DIR=$ROOT/target/ab-$name cargo build --release --quiet --manifest-path "$src/Cargo.toml"
}
A_REV=$(git rev-parse --short=12 "$BASE^{commit}")
B_REV=$(git rev-parse --short=12 "$NEW^{commit}")
say "building A=$A_REV and B=$B_REV (release)"
build "$A_REV" a
build "$B_REV" b
BENCH=$ROOT/target/ab-b/release/ringws
FLOOR=$ROOT/benches/peers/echo-floor/target/release/echo-floor
if [[ -f benches/peers/echo-floor/Cargo.toml ]]; then
    cargo build --release --quiet --locked --manifest-path benches/peers/echo-floor/Cargo.toml
fi
SERVERS="a b"
[[ -x $FLOOR ]] && SERVERS="a b floor"

start() {
    local name=$1 log=$LOGDIR/$1.log
    case $name in
        a | b)
            taskset -c "$SERVER_CPU" "$ROOT/target/ab-$name/release/ringws" serve \
                --listen 127.0.0.1:9111 --admin-listen off --cores 1 --app echo \
                --max-connections "$MAX_CONNECTIONS" --log warn >"$log" 2>&1 &
            ;;
        floor) taskset -c "$SERVER_CPU" "$FLOOR" 127.0.0.1:9111 >"$log" 2>&1 & ;;
    esac
    PID=$!
    PIDS+=("$PID")
    local waited=0
    until (exec 3<>/dev/tcp/127.0.0.1/9111) 2>/dev/null; do
        ((waited++ < 100)) || { say "$name did not start"; cat "$log" >&2; exit 1; }
        sleep 0.1
    done
}
stop() {
    kill -TERM "$PID" 2>/dev/null || true
    sleep 0.3
    kill -KILL "$PID" 2>/dev/null || true
    wait "$PID" 2>/dev/null || true
}
record() {
    python3 -c '
import json, sys
row = json.loads(sys.stdin.read() or "{\"failed\": true}")
for arg in sys.argv[1:]:
    k, _, v = arg.partition("=")
    row[k] = v
print(json.dumps(row))' "$@" >>"$OUT"
}
bench() { taskset -c "$CLIENT_CPU" "$BENCH" bench "$@" --json 2>>"$LOGDIR/bench.err" || true; }

say "results -> $OUT"
for run in $(seq 1 "$RUNS"); do
    for payload in $PAYLOADS; do
        for server in $SERVERS; do
            start "$server"
            bench echo --url ws://127.0.0.1:9111/ --conns "$CONNS" --payload "$payload" \
                --warmup "$WARMUP" --duration "$DURATION" --server-pid "$PID" |
                record test=echo server="$server" run="$run"
            stop
        done
    done
    for server in a b; do
        start "$server"
        bench connect --url ws://127.0.0.1:9111/ --concurrency "$CONNECT_CONCURRENCY" \
            --sources "$SOURCES" --warmup "$WARMUP" --duration "$DURATION" --server-pid "$PID" |
            record test=connect server="$server" run="$run"
        stop
        start "$server"
        bench idle --url ws://127.0.0.1:9111/ --conns "$IDLE_CONNS" --sources "$SOURCES" \
            --hold 2 --server-pid "$PID" | record test=idle server="$server" run="$run"
        stop
    done
    say "round $run/$RUNS done"
done

python3 - "$OUT" "$A_REV" "$B_REV" <<'EOF'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
a_rev, b_rev = sys.argv[2], sys.argv[3]
def med(test, server, field, payload=None):
    vals = [r[field] for r in rows if r.get("test") == test and r.get("server") == server
            and (payload is None or r.get("payload_bytes") == payload) and r.get(field) is not None
            and not r.get("errors_total")]
    return (statistics.median(vals), len(vals)) if vals else (None, 0)
print(f"A = {a_rev}, B = {b_rev}; medians of the rounds (n = rounds with no client error)\n")
print("| measure | A | B | B / A | floor | B / floor |")
print("|---|---|---|---|---|---|")
payloads = sorted({r["payload_bytes"] for r in rows if r.get("test") == "echo"})
for p in payloads:
    (a, na), (b, nb) = med("echo", "a", "server_cpu_us_per_op", p), med("echo", "b", "server_cpu_us_per_op", p)
    f, nf = med("echo", "floor", "server_cpu_us_per_op", p)
    ratio = f"{b / a:.3f}" if a and b else "-"
    fl = f"{f:.2f} µs (n={nf})" if f else "-"
    fr = f"{b / f:.3f}" if f and b else "-"
    print(f"| CPU per echo, {p} B | {a:.2f} µs (n={na}) | {b:.2f} µs (n={nb}) | {ratio} | {fl} | {fr} |")
(a, na), (b, nb) = med("connect", "a", "server_cpu_us_per_op"), med("connect", "b", "server_cpu_us_per_op")
print(f"| CPU per handshake | {a:.2f} µs (n={na}) | {b:.2f} µs (n={nb}) | {b / a:.3f} | | |")
def per_conn(server):
    vals = [r["server_rss_bytes_per_conn"] for r in rows
            if r.get("test") == "idle" and r.get("server") == server
            and r.get("server_rss_bytes_per_conn") is not None and not r.get("errors_total")]
    return (statistics.median(vals), len(vals)) if vals else (None, 0)
(a, na), (b, nb) = per_conn("a"), per_conn("b")
if a is not None and b is not None:
    print(f"| userspace per idle connection | {a:.0f} B (n={na}) | {b:.0f} B (n={nb}) | | | |")
EOF
