#!/usr/bin/env bash
# Measures ringws against fastwebsockets and tokio-tungstenite on this machine, side by side, and
# regenerates docs/benchmarks.md from the results. The echo tests also run the echo floor
# (benches/peers/echo-floor: the least an echo server must do, on epoll), so that ringws' CPU per
# echo is read against the floor's from the same repetition.
#
#   bash benches/run.sh              # the full run (about 15 minutes on 2 cores)
#   QUICK=1 bash benches/run.sh      # smoke run, about a minute; figures are not for quoting
#
# Settings (environment):
#   RUNS=3          repetitions; servers are interleaved within each repetition
#   DURATION=10     measured window of each echo/connect test, seconds
#   WARMUP=2        load before each window, seconds (excluded from all figures)
#   CONNS=100       connections of the echo tests
#   PAYLOADS="20 1024 16384"       echo payload sizes, bytes
#   IDLE_CONNS="10000 19000"       idle connection counts (19,000 is the top under a 20,000 fd cap)
#   IDLE_HOLD=3     seconds idle connections are held once all are open
#   CONNECT_CONCURRENCY=64         handshakes in flight in the connect test
#   SERVER_CPU=0 CLIENT_CPU=1      where the server and the load generator are pinned
#   RINGWS_REV=HEAD build and measure this committed revision (via `git archive`, in
#                   target/bench-src/) instead of the working tree
#   OUT=FILE        write the results there and leave latest.jsonl and docs/benchmarks.md alone
#                   (default: benches/results/<UTC timestamp>.jsonl, copied to latest.jsonl, and
#                   docs/benchmarks.md regenerated)
#
# Every server is started fresh for each test, pinned to SERVER_CPU, and loaded by `ringws bench`
# pinned to CLIENT_CPU with --server-pid, so CPU time and RSS are the server's own. Order inside a
# repetition: handshake churn first (its TIME_WAIT sockets expire during the echo tests, before
# the idle tests read the kernel's Slab), then echo, open-loop latency, scaling, idle memory.
set -euo pipefail

cd "$(dirname "$0")/.."
ROOT=$PWD

if [[ "${QUICK:-0}" == 1 ]]; then
    RUNS=${RUNS:-1} DURATION=${DURATION:-2} WARMUP=${WARMUP:-1} IDLE_HOLD=${IDLE_HOLD:-1}
fi
RUNS=${RUNS:-3}
DURATION=${DURATION:-10}
WARMUP=${WARMUP:-2}
CONNS=${CONNS:-100}
PAYLOADS=${PAYLOADS:-"20 1024 16384"}
IDLE_CONNS=${IDLE_CONNS:-"10000 19000"}
IDLE_HOLD=${IDLE_HOLD:-3}
CONNECT_CONCURRENCY=${CONNECT_CONCURRENCY:-64}
SERVER_CPU=${SERVER_CPU:-0}
CLIENT_CPU=${CLIENT_CPU:-1}
SERVERS="ringws fastwebsockets tungstenite"
# The echo tests run the floor too, right after ringws.
ECHO_SERVERS="ringws echo-floor fastwebsockets tungstenite"
# ringws sizes its connection table from --max-connections; keep it under the fd cap.
FD_HARD=$(ulimit -Hn)
RINGWS_MAX_CONNECTIONS=$((FD_HARD - 100))
# 8 loopback sources: about 28k ephemeral ports each, so idle and churn never run out.
SOURCES=127.0.0.1,127.0.0.2,127.0.0.3,127.0.0.4,127.0.0.5,127.0.0.6,127.0.0.7,127.0.0.8

STAMP=$(date -u +%Y%m%dT%H%M%SZ)
mkdir -p benches/results
PUBLISH=1
[[ -n ${OUT:-} ]] && PUBLISH=0
OUT=${OUT:-benches/results/$STAMP.jsonl}
LOGDIR=$(mktemp -d /tmp/ringws-bench.XXXXXX)
RINGWS=$ROOT/target/release/ringws

say() { printf '[%s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

# --- cleanup: every process this script started dies with it ---------------------------------
PIDS=()
cleanup() {
    local pid
    for pid in "${PIDS[@]}"; do
        kill -TERM "$pid" 2>/dev/null || true
    done
    sleep 0.3
    for pid in "${PIDS[@]}"; do
        kill -KILL "$pid" 2>/dev/null || true
    done
}
trap cleanup EXIT
trap 'say "interrupted"; exit 130' INT TERM

# --- build ---------------------------------------------------------------------------------------
if [[ -n ${RINGWS_REV:-} ]]; then
    # A committed revision, built apart from the working tree (which may be mid-edit).
    REV=$(git rev-parse --short=12 "$RINGWS_REV^{commit}")
    SRC=$ROOT/target/bench-src/$REV
    say "building ringws $REV from git (release) and the peers"
    rm -rf "$SRC"
    mkdir -p "$SRC"
    git archive "$REV" | tar -x -C "$SRC"
    CARGO_TARGET_DIR=$ROOT/target/bench-rev cargo build --release --quiet --manifest-path "$SRC/Cargo.toml"
    RINGWS=$ROOT/target/bench-rev/release/ringws
    WORKTREE_CHANGES=0
else
    REV=$(git rev-parse --short=12 HEAD)
    say "building ringws from the working tree (release) and the peers"
    cargo build --release --quiet
    WORKTREE_CHANGES=$(git status --porcelain -- src Cargo.toml Cargo.lock | wc -l)
fi
for peer in fastwebsockets-echo tungstenite-echo echo-floor; do
    cargo build --release --quiet --locked --manifest-path "benches/peers/$peer/Cargo.toml"
done

# --- servers ---------------------------------------------------------------------------------
port_of() {
    case $1 in
        ringws | ringws-2cores) echo 9101 ;;
        fastwebsockets) echo 9102 ;;
        tungstenite) echo 9103 ;;
        echo-floor) echo 9104 ;;
    esac
}

# start_server NAME: starts it, waits for its ready line, sets SERVER_PID and URL.
start_server() {
    local name=$1 port log
    port=$(port_of "$name")
    log=$LOGDIR/$name.log
    case $name in
        ringws)
            taskset -c "$SERVER_CPU" "$RINGWS" serve --listen "127.0.0.1:$port" --cores 1 --app echo \
                --max-connections "$RINGWS_MAX_CONNECTIONS" --log warn >"$log" 2>&1 &
            ;;
        ringws-2cores)
            "$RINGWS" serve --listen "127.0.0.1:$port" --cores 2 --app echo \
                --max-connections "$RINGWS_MAX_CONNECTIONS" --log warn >"$log" 2>&1 &
            ;;
        fastwebsockets | tungstenite)
            taskset -c "$SERVER_CPU" "benches/peers/$name-echo/target/release/$name-echo" \
                "127.0.0.1:$port" >"$log" 2>&1 &
            ;;
        echo-floor)
            # One thread, like ringws --cores 1 above.
            taskset -c "$SERVER_CPU" benches/peers/echo-floor/target/release/echo-floor \
                "127.0.0.1:$port" 1 >"$log" 2>&1 &
            ;;
    esac
    SERVER_PID=$!
    PIDS+=("$SERVER_PID")
    URL=ws://127.0.0.1:$port/
    local waited=0
    until grep -q "listening on" "$log"; do
        if ! kill -0 "$SERVER_PID" 2>/dev/null || ((waited > 100)); then
            say "$name did not start; its output:"
            cat "$log" >&2
            exit 1
        fi
        sleep 0.1
        waited=$((waited + 1))
    done
}

stop_server() {
    kill -TERM "$SERVER_PID" 2>/dev/null || true
    local waited=0
    while kill -0 "$SERVER_PID" 2>/dev/null && ((waited < 30)); do
        sleep 0.1
        waited=$((waited + 1))
    done
    kill -KILL "$SERVER_PID" 2>/dev/null || true
    wait "$SERVER_PID" 2>/dev/null || true
}

# --- recording -------------------------------------------------------------------------------
# record KEY=VALUE...: reads one `ringws bench --json` object on stdin (or nothing, when the
# bench could not start) and appends it to $OUT with the keys added (numbers stay numbers).
record() {
    BUSY_FILE=$LOGDIR/busy python3 -c '
import json, os, sys
text = sys.stdin.read().strip()
try:
    row = json.loads(text) if text else {"failed": True}
except ValueError:
    row = {"failed": True, "output": text[:500]}
extra = {}
# Whole-machine CPU use during the bench (its warm-up and window), written by bench() before the
# subshell running it exits and so before stdin ends: read it only now.
try:
    with open(os.environ["BUSY_FILE"]) as f:
        before, start_ns, after, end_ns = (int(x) for x in f.read().split())
    os.remove(os.environ["BUSY_FILE"])
    seconds = (end_ns - start_ns) / 1e9
    extra["machine_busy_cpus"] = round((after - before) / os.sysconf("SC_CLK_TCK") / seconds, 3)
except (OSError, ValueError, ZeroDivisionError):
    pass
for arg in sys.argv[1:]:
    key, _, value = arg.partition("=")
    try:
        extra[key] = json.loads(value)
    except ValueError:
        extra[key] = value
print(json.dumps({**extra, **row}))
' "$@" >>"$OUT"
}

# Busy time of all CPUs so far (user+nice+system+irq+softirq+steal), in clock ticks: the load
# on the whole machine during a test, to spot other work competing with the benchmark.
busy_jiffies() { awk '/^cpu / {print $2 + $3 + $4 + $7 + $8 + $9; exit}' /proc/stat; }

# bench ARGS...: runs `ringws bench ARGS --json` on CLIENT_CPU, prints its JSON; never fails the
# script (exit 1 means errors were counted, and they are in the JSON).
# With BENCH_UNPINNED=1 the generator may run on any CPU.
bench() {
    local rc=0 pin=(taskset -c "$CLIENT_CPU")
    [[ ${BENCH_UNPINNED:-0} == 1 ]] && pin=()
    local busy_before start_ns
    busy_before=$(busy_jiffies)
    start_ns=$(date +%s%N)
    "${pin[@]}" "$RINGWS" bench "$@" --json 2>>"$LOGDIR/bench.err" || rc=$?
    echo "$busy_before $start_ns $(busy_jiffies) $(date +%s%N)" >"$LOGDIR/busy.tmp"
    mv "$LOGDIR/busy.tmp" "$LOGDIR/busy"
    if ((rc > 1)); then
        say "ringws bench $* exited $rc (see $LOGDIR/bench.err)"
    fi
}

# last_field TEST SERVER RUN PAYLOAD FIELD: that field of the matching row already in $OUT.
last_field() {
    python3 -c '
import json, sys
out, test, server, run, payload, field = sys.argv[1:]
value = 0
for line in open(out):
    r = json.loads(line)
    if (r.get("test"), r.get("server"), r.get("run"), r.get("payload_bytes")) == (
        test, server, int(run), int(payload)):
        value = r.get(field) or 0
print(value)
' "$OUT" "$@"
}

slab_kb() { awk '/^Slab:/ {print $2}' /proc/meminfo; }
# Bytes of live slab objects (active objects x object size, every cache): without the empty and
# partly used slab pages that `Slab:` also counts. Empty when /proc/slabinfo is not readable.
slab_object_bytes() { awk 'NR > 2 {s += $2 * $4} END {printf "%d", s}' /proc/slabinfo 2>/dev/null || true; }
tcp_inuse() { awk '/^TCP:/ {print $3}' /proc/net/sockstat; }
tcp_tw() { awk '/^TCP:/ {print $7}' /proc/net/sockstat; }

# --- the run ---------------------------------------------------------------------------------
COMMAND="RUNS=$RUNS DURATION=$DURATION WARMUP=$WARMUP bash benches/run.sh"
[[ -n ${RINGWS_REV:-} ]] && COMMAND="RINGWS_REV=$RINGWS_REV $COMMAND"
[[ ${QUICK:-0} == 1 ]] && COMMAND="QUICK=1 $COMMAND"
python3 - >"$OUT" <<EOF
import json, platform, subprocess, os
def sh(cmd):
    try:
        return subprocess.run(cmd, shell=True, capture_output=True, text=True).stdout.strip()
    except OSError:
        return ""
cpu = ""
for line in open("/proc/cpuinfo"):
    if line.startswith("model name"):
        cpu = line.split(":", 1)[1].strip()
        break
print(json.dumps({
    "test": "meta",
    "started_utc": "$STAMP",
    "quick": "${QUICK:-0}" == "1",
    "command": "$COMMAND",
    "settings": {"runs": $RUNS, "duration_s": $DURATION, "warmup_s": $WARMUP, "conns": $CONNS,
                 "payloads": "$PAYLOADS", "idle_conns": "$IDLE_CONNS", "idle_hold_s": $IDLE_HOLD,
                 "connect_concurrency": $CONNECT_CONCURRENCY, "server_cpu": $SERVER_CPU,
                 "client_cpu": $CLIENT_CPU, "ringws_max_connections": $RINGWS_MAX_CONNECTIONS},
    "cpu_model": cpu,
    "cpus": os.cpu_count(),
    "mem_total_kb": int(sh("awk '/^MemTotal:/ {print \$2}' /proc/meminfo") or 0),
    "kernel": platform.release(),
    "nofile_hard": $FD_HARD,
    "ringws_commit": "$REV",
    "ringws_worktree_changes": $WORKTREE_CHANGES,
    "rustc": sh("rustc --version"),
}))
EOF

T0=$(date +%s)
say "results -> $OUT (logs in $LOGDIR)"
for run in $(seq 1 "$RUNS"); do
    say "run $run/$RUNS: handshake churn"
    for server in $SERVERS; do
        start_server "$server"
        bench connect --url "$URL" --concurrency "$CONNECT_CONCURRENCY" --sources "$SOURCES" \
            --warmup "$WARMUP" --duration "$DURATION" --server-pid "$SERVER_PID" |
            record test=connect server="$server" run="$run"
        stop_server
    done

    for payload in $PAYLOADS; do
        say "run $run/$RUNS: echo $payload B"
        for server in $ECHO_SERVERS; do
            start_server "$server"
            bench echo --url "$URL" --conns "$CONNS" --payload "$payload" \
                --warmup "$WARMUP" --duration "$DURATION" --server-pid "$SERVER_PID" |
                record test=echo server="$server" run="$run"
            stop_server
        done
    done

    say "run $run/$RUNS: echo 20 B at half of each server's saturated rate"
    for server in $SERVERS; do
        saturated=$(last_field echo "$server" "$run" 20 msgs_per_s)
        rate=$(python3 -c "print(max(1000, int(float('$saturated') / 2)))")
        start_server "$server"
        bench echo --url "$URL" --conns "$CONNS" --payload 20 --rate "$rate" \
            --warmup "$WARMUP" --duration "$DURATION" --server-pid "$SERVER_PID" |
            record test=rate server="$server" run="$run" saturated_msgs_per_s="$saturated"
        stop_server
    done

    say "run $run/$RUNS: ringws --cores 1 vs --cores 2 (echo 20 B, 2 generator threads, unpinned)"
    for server in ringws ringws-2cores; do
        start_server "$server"
        cores=1
        [[ $server == ringws-2cores ]] && cores=2
        BENCH_UNPINNED=1 bench echo --url "$URL" --conns "$CONNS" --payload 20 --threads 2 \
            --warmup "$WARMUP" --duration "$DURATION" --server-pid "$SERVER_PID" |
            record test=scaling server="$server" run="$run" cores="$cores"
        stop_server
    done

    for n in $IDLE_CONNS; do
        say "run $run/$RUNS: $n idle connections"
        for server in $SERVERS; do
            start_server "$server"
            base_inuse=$(tcp_inuse)
            tw_before=$(tcp_tw)
            slab_before=$(slab_kb)
            objects_before=$(slab_object_bytes)
            bench idle --url "$URL" --conns "$n" --sources "$SOURCES" --hold "$IDLE_HOLD" \
                --server-pid "$SERVER_PID" >"$LOGDIR/idle.json" &
            bench_pid=$!
            PIDS+=("$bench_pid")
            # Both ends of each loopback connection are sockets here: all open at base + 2n.
            slab_open=""
            while kill -0 "$bench_pid" 2>/dev/null; do
                if (($(tcp_inuse) >= base_inuse + 2 * n)); then
                    sleep 0.5
                    slab_open=$(slab_kb)
                    objects_open=$(slab_object_bytes)
                    tw_open=$(tcp_tw)
                    break
                fi
                sleep 0.1
            done
            wait "$bench_pid" || true
            if [[ -n $slab_open ]]; then
                record test=idle server="$server" run="$run" slab_kb_before="$slab_before" \
                    slab_kb_open="$slab_open" tw_before="$tw_before" tw_open="$tw_open" \
                    slab_objects_bytes_before="${objects_before:-null}" \
                    slab_objects_bytes_open="${objects_open:-null}" \
                    <"$LOGDIR/idle.json"
            else
                say "$server: not all $n connections were open at once; no Slab reading"
                record test=idle server="$server" run="$run" <"$LOGDIR/idle.json"
            fi
            stop_server
        done
    done
done
T1=$(date +%s)
say "measured in $((T1 - T0)) s"
echo "{\"test\": \"end\", \"elapsed_s\": $((T1 - T0))}" >>"$OUT"

if ((PUBLISH)); then
    cp "$OUT" benches/results/latest.jsonl
    python3 benches/report.py benches/results/latest.jsonl docs/benchmarks.md
    say "wrote docs/benchmarks.md from benches/results/latest.jsonl"
else
    say "report: python3 benches/report.py $OUT FILE.md"
fi
