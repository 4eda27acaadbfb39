#!/usr/bin/env bash
# wss:// side by side in one run: ringws serving TLS itself (`serve --tls-listen`), the rustls-echo
# peer (fastwebsockets over tokio-rustls, the same rustls 0.23 on ring), and plain ws:// ringws as
# the reference, interleaved round by round so machine noise hits all alike. Measures server CPU
# per 1 KiB echo, per full TLS 1.3 handshake (`connect --tls-resume off`) and per resumed one
# (`--tls-resume on`, after a warm-up that collects tickets), and userspace memory per idle
# connection (anonymous RSS growth / connections). Prints a table of medians and ratios.
#
#   bash benches/tls.sh
#
# Settings (environment): RUNS=5 rounds, DURATION=5 s windows, WARMUP=1 s, CONNS=100 echo
# connections, PAYLOAD=1024, IDLE_CONNS=10000, CONNECT_CONCURRENCY=64, SERVER_CPU=0
# CLIENT_CPU=1, KEY=ec (certificate key: ec = P-256, or rsa = RSA 2048), SERVERS="ws wss peer"
# (any subset), PORT_BASE=19400 (ports PORT_BASE+1..3), OUT=benches/results/tls-<stamp>.jsonl.
# The load generator is the working tree's release build; the servers are the same binary, or
# RINGWS_SERVER=PATH (another build of ringws). Without `serve --tls-listen` in the server, the
# run measures the peer and plain ws:// only and says so.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

RUNS=${RUNS:-5}
DURATION=${DURATION:-5}
WARMUP=${WARMUP:-1}
CONNS=${CONNS:-100}
PAYLOAD=${PAYLOAD:-1024}
IDLE_CONNS=${IDLE_CONNS:-10000}
CONNECT_CONCURRENCY=${CONNECT_CONCURRENCY:-64}
SERVER_CPU=${SERVER_CPU:-0}
CLIENT_CPU=${CLIENT_CPU:-1}
PORT_BASE=${PORT_BASE:-19400}
WS_PORT=$((PORT_BASE + 1))
WSS_PORT=$((PORT_BASE + 2))
PEER_PORT=$((PORT_BASE + 3))
SOURCES=127.0.0.1,127.0.0.2,127.0.0.3,127.0.0.4,127.0.0.5,127.0.0.6,127.0.0.7,127.0.0.8
MAX_CONNECTIONS=$(($(ulimit -Hn) - 100))
STAMP=$(date -u +%Y%m%dT%H%M%SZ)
mkdir -p benches/results
OUT=${OUT:-benches/results/tls-$STAMP.jsonl}
LOGDIR=$(mktemp -d /tmp/ringws-tls.XXXXXX)
CERTS=$LOGDIR/certs

say() { printf '[%s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

PIDS=()
cleanup() {
    local pid
    for pid in "${PIDS[@]}"; do kill -KILL "$pid" 2>/dev/null || true; done
}
trap cleanup EXIT

say "building ringws and benches/peers/rustls-echo (release)"
cargo build --release --quiet
cargo build --release --quiet --locked --manifest-path benches/peers/rustls-echo/Cargo.toml
RINGWS=$ROOT/target/release/ringws
SERVER_BIN=${RINGWS_SERVER:-$RINGWS}
PEER=$ROOT/benches/peers/rustls-echo/target/release/rustls-echo
KEY=${KEY:-ec} bash benches/tls-certs.sh "$CERTS" 2>/dev/null

SERVERS=${SERVERS:-"ws wss peer"}
if [[ " $SERVERS " == *" wss "* ]] && ! "$SERVER_BIN" serve --help | grep -q -- '--tls-listen'; then
    say "this ringws has no 'serve --tls-listen' yet: skipping ringws over wss://, measuring the peer and plain ws:// only"
    SERVERS=${SERVERS//wss/}
fi
SERVERS=$(echo $SERVERS)
TLS_SERVERS=$(for s in $SERVERS; do [[ $s == ws ]] || printf '%s ' "$s"; done)

# start NAME: starts that server pinned to SERVER_CPU; sets PID and URL.
start() {
    local name=$1 log=$LOGDIR/$1.log port
    case $name in
        ws)
            port=$WS_PORT
            URL=ws://127.0.0.1:$port/
            taskset -c "$SERVER_CPU" "$SERVER_BIN" serve --listen "127.0.0.1:$port" \
                --admin-listen off --cores 1 --app echo \
                --max-connections "$MAX_CONNECTIONS" --log warn >"$log" 2>&1 &
            ;;
        wss)
            port=$WSS_PORT
            URL=wss://127.0.0.1:$port/
            taskset -c "$SERVER_CPU" "$SERVER_BIN" serve --listen "127.0.0.1:$WS_PORT" \
                --tls-listen "127.0.0.1:$port" --tls-cert "$CERTS/server-chain.pem" \
                --tls-key "$CERTS/server.key" --admin-listen off --cores 1 --app echo \
                --max-connections "$MAX_CONNECTIONS" --log warn >"$log" 2>&1 &
            ;;
        peer)
            port=$PEER_PORT
            URL=wss://127.0.0.1:$port/
            taskset -c "$SERVER_CPU" "$PEER" "127.0.0.1:$port" "$CERTS/server-chain.pem" \
                "$CERTS/server.key" >"$log" 2>&1 &
            ;;
        *) say "unknown server $name (use ws, wss, peer)"; exit 2 ;;
    esac
    PID=$!
    PIDS+=("$PID")
    local waited=0
    until (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; do
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
# bench MODE ARGS...: the generator pinned to CLIENT_CPU, trusting the test CA on wss:// URLs.
bench() {
    local mode=$1
    shift
    local tls=()
    [[ $URL == wss://* ]] && tls=(--ca-file "$CERTS/ca.pem")
    taskset -c "$CLIENT_CPU" "$RINGWS" bench "$mode" --url "$URL" "${tls[@]}" "$@" --json \
        2>>"$LOGDIR/bench.err" || true
}

say "servers: $SERVERS (ringws: $SERVER_BIN); results -> $OUT; logs in $LOGDIR"
for run in $(seq 1 "$RUNS"); do
    for server in $SERVERS; do
        start "$server"
        bench echo --conns "$CONNS" --payload "$PAYLOAD" --warmup "$WARMUP" \
            --duration "$DURATION" --server-pid "$PID" |
            record test=echo server="$server" run="$run"
        stop
    done
    for server in $SERVERS; do
        start "$server"
        bench connect --concurrency "$CONNECT_CONCURRENCY" --sources "$SOURCES" \
            --tls-resume off --warmup "$WARMUP" --duration "$DURATION" --server-pid "$PID" |
            record test=connect_full server="$server" run="$run"
        stop
    done
    for server in $TLS_SERVERS; do
        start "$server"
        bench connect --concurrency "$CONNECT_CONCURRENCY" --sources "$SOURCES" \
            --tls-resume on --warmup "$WARMUP" --duration "$DURATION" --server-pid "$PID" |
            record test=connect_resumed server="$server" run="$run"
        stop
    done
    for server in $SERVERS; do
        start "$server"
        bench idle --conns "$IDLE_CONNS" --sources "$SOURCES" --hold 2 --server-pid "$PID" |
            record test=idle server="$server" run="$run"
        stop
    done
    say "round $run/$RUNS done"
done
[[ -s $LOGDIR/bench.err ]] && say "generator messages: $LOGDIR/bench.err"

python3 - "$OUT" "$PAYLOAD" "$IDLE_CONNS" <<'EOF'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
payload, idle_conns = sys.argv[2], sys.argv[3]

def med(test, server, field):
    vals = [r[field] for r in rows if r.get("test") == test and r.get("server") == server
            and r.get(field) is not None and not r.get("errors_total") and not r.get("failed")]
    return (statistics.median(vals), len(vals)) if vals else (None, 0)

def cell(value, n, unit, digits):
    return f"{value:,.{digits}f} {unit} (n={n})" if value is not None else "-"

def ratio(a, b):
    return f"{a / b:.2f}" if a is not None and b else "-"

measures = [
    (f"CPU per {payload} B echo", "echo", "server_cpu_us_per_op", "µs", 2),
    ("CPU per full handshake", "connect_full", "server_cpu_us_per_op", "µs", 1),
    ("CPU per resumed TLS handshake", "connect_resumed", "server_cpu_us_per_op", "µs", 1),
    (f"userspace per idle connection ({idle_conns})", "idle", "server_rss_bytes_per_conn", "B", 0),
]
print("medians of the rounds (n = rounds with no client error); ws: ringws plain ws://, the "
      "reference; wss: ringws serving TLS; peer: rustls-echo\n")
print("| measure | ringws wss | peer | wss / peer | ringws ws | wss / ws |")
print("|---|---|---|---|---|---|")
for label, test, field, unit, digits in measures:
    (w, nw), (p, np), (s, ns) = (med(test, x, field) for x in ("wss", "peer", "ws"))
    print(f"| {label} | {cell(w, nw, unit, digits)} | {cell(p, np, unit, digits)} | "
          f"{ratio(w, p)} | {cell(s, ns, unit, digits)} | {ratio(w, s)} |")

print()
for test in ("connect_full", "connect_resumed"):
    for server in ("wss", "peer"):
        got = [r for r in rows if r.get("test") == test and r.get("server") == server
               and r.get("handshakes")]
        if got:
            resumed = sum(r.get("tls_resumed") or 0 for r in got)
            total = sum(r["handshakes"] for r in got)
            print(f"{test} {server}: {resumed:,} of {total:,} handshakes resumed a session")
failed = [r for r in rows if r.get("errors_total") or r.get("failed")]
for r in failed:
    print(f"round {r.get('run')} {r.get('test')} {r.get('server')}: errors {r.get('errors', 'no report')}")
EOF
