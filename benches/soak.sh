#!/usr/bin/env bash
# Soak: ~19,000 pub/sub subscribers with churn, publishes and slow consumers for DURATION seconds,
# then the load stops and the server must give back what it held.
#
#   server:  `ringws serve` (pubsub app, default settings but --max-connections 19900), its admin
#            listener on 127.0.0.1, under this machine's RLIMIT_NOFILE.
#   clients: benches/soak_client.py, PROCS subscriber processes (each under the same fd cap) that
#            hold CONNS connections in all from 127.0.0.2..127.0.0.9, one topic of TOPICS each;
#            CHURN of them closed and replaced every second; SLOW_SHARE of them slow consumers
#            (subscribed to every topic, never reading: the server cuts them off and they come
#            back); one publisher POSTing PAYLOAD bytes to /publish/soak-<k> at PUB_RATE per second.
#   samples: every SAMPLE_EVERY seconds, the server's open fds, VmRSS and RssAnon, and from
#            /metrics (summed over cores) connections_open, memory_held_bytes,
#            outbound_queued_bytes, slow_consumer_closes_total, write_stall_closes_total.
#
# Phases: baseline (server up, no clients) -> ramp (until CONNS are open) -> load (DURATION s,
# publishing) -> the load stops (every client process ended) -> SETTLE s later, "settled".
# The report compares the start of steady state, the end of the load and settled: a Markdown
# table on stdout, and JSON lines (samples, client counters, summary) in OUT.
#
# Exit status: 0 when settled shows 0 connections, memory_held_bytes 0, outbound_queued_bytes 0
# and the fds back to the baseline (within FD_SLACK); 1 when not; 2 when the run could not
# start or a process died; 130 on Ctrl-C. Every process started here is stopped by its pid on
# exit, and the clients also stop by themselves past the hard bound.
#
# Usage: benches/soak.sh                                   (builds target/release/ringws first)
#        DURATION=60 CONNS=3000 PUB_RATE=40 benches/soak.sh  (a short check)
set -euo pipefail
cd "$(dirname "$0")/.."

BIN=${BIN:-target/release/ringws}
CONNS=${CONNS:-19000}
DURATION=${DURATION:-600}
TOPICS=${TOPICS:-4}
PUB_RATE=${PUB_RATE:-8}
PAYLOAD=${PAYLOAD:-4096}
SLOW_SHARE=${SLOW_SHARE:-0.02}
CHURN=${CHURN:-0.01}
PROCS=${PROCS:-$(((CONNS + 4999) / 5000 < 2 ? 2 : (CONNS + 4999) / 5000))}
SOURCES=${SOURCES:-127.0.0.2,127.0.0.3,127.0.0.4,127.0.0.5,127.0.0.6,127.0.0.7,127.0.0.8,127.0.0.9}
WS=${WS:-127.0.0.1:19301}
ADMIN=${ADMIN:-127.0.0.1:19391}
SAMPLE_EVERY=${SAMPLE_EVERY:-10}
SETTLE=${SETTLE:-15}
RAMP_TIMEOUT=${RAMP_TIMEOUT:-240}
FD_SLACK=${FD_SLACK:-10}
MAX_DURATION=3600
STAMP=$(date -u +%Y%m%dT%H%M%SZ)
OUT=${OUT:-benches/results/soak-$STAMP.jsonl}
LOGDIR=${LOGDIR:-$(mktemp -d /tmp/ringws-soak.XXXXXX)}

die() { echo "soak: $*" >&2; exit 2; }
if ! [[ $DURATION =~ ^[0-9]+$ ]] || ((DURATION < 10 || DURATION > MAX_DURATION)); then
    die "DURATION must be whole seconds from 10 to $MAX_DURATION (got '$DURATION')"
fi
if ! [[ $CONNS =~ ^[0-9]+$ ]] || ((CONNS < 10 || CONNS > 19800)); then
    die "CONNS must be from 10 to 19800: the server is started with --max-connections 19900"
fi
[[ $PROCS =~ ^[1-9][0-9]*$ ]] || die "PROCS must be a positive integer"
((CONNS / PROCS <= 18000)) || die "$((CONNS / PROCS)) connections per client process: raise PROCS"

if [[ -z ${BIN_PREBUILT:-} ]]; then cargo build --release --quiet; fi
[[ -x $BIN ]] || die "$BIN is not an executable"
ulimit -n "$(ulimit -Hn)"
mkdir -p "$(dirname "$OUT")"

server_pid=
pub_pid=
nap_pid=
client_pids=()

# sleep in the background and wait for it, so that a signal's trap runs at once.
nap() {
    sleep "$1" &
    nap_pid=$!
    wait "$nap_pid" || true
    nap_pid=
}

stop_pid() { # pid, seconds to wait after SIGTERM before SIGKILL
    local pid=$1 i
    [[ -n $pid ]] || return 0
    kill -TERM "$pid" 2>/dev/null || return 0
    for ((i = 0; i < $2 * 10; i++)); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
}

stop_load() {
    local pid
    for pid in "${client_pids[@]}" "$pub_pid"; do
        if [[ -n $pid ]]; then kill -TERM "$pid" 2>/dev/null || true; fi
    done
    for pid in "${client_pids[@]}" "$pub_pid"; do stop_pid "$pid" 10; done
    client_pids=()
    pub_pid=
}

# shellcheck disable=SC2317  # invoked by the EXIT trap
cleanup() {
    if [[ -n $nap_pid ]]; then kill "$nap_pid" 2>/dev/null || true; fi
    stop_load
    stop_pid "$server_pid" 15
    server_pid=
}
trap cleanup EXIT
trap 'echo "soak: interrupted" >&2; exit 130' INT TERM

port_free() { ! ss -ltnH "( sport = :${1#*:} )" | grep -q .; }
for addr in "$WS" "$ADMIN"; do
    port_free "$addr" || die "$addr is in use: stop what listens there, or set WS / ADMIN"
done

metrics() { curl -s --max-time 5 "http://$ADMIN/metrics"; }

# One sample as a JSON object: fds, memory from /proc, the gauges and counters summed over cores.
sample() { # phase
    local m fds rss anon
    m=$(metrics) || m=
    fds=$(find "/proc/$server_pid/fd" -mindepth 1 -maxdepth 1 2>/dev/null | wc -l)
    rss=$(awk '/^VmRSS:/ {print $2}' "/proc/$server_pid/status" 2>/dev/null || echo 0)
    anon=$(awk '/^RssAnon:/ {print $2}' "/proc/$server_pid/status" 2>/dev/null || echo 0)
    awk -v phase="$1" -v t="$(($(date +%s) - t0))" -v fds="$fds" -v rss="${rss:-0}" \
        -v anon="${anon:-0}" -v ok="${m:+1}" -v loadavg="$(cut -d' ' -f1-3 /proc/loadavg)" '
        BEGIN {
            n = split("connections_open memory_held_bytes outbound_queued_bytes " \
                      "slow_consumer_closes_total write_stall_closes_total", names, " ")
            for (i = 1; i <= n; i++) v[names[i]] = 0
        }
        /^ringws_/ {
            name = $1; sub(/^ringws_/, "", name); sub(/\{.*/, "", name)
            if (name in v) v[name] += $NF
        }
        END {
            printf "{\"kind\":\"sample\",\"phase\":\"%s\",\"t\":%d,\"fds\":%d,\"vm_rss_kb\":%d,\"rss_anon_kb\":%d,\"metrics_ok\":%s", \
                phase, t, fds, rss, anon, (ok ? "true" : "false")
            for (i = 1; i <= n; i++) printf ",\"%s\":%d", names[i], v[names[i]]
            printf ",\"loadavg\":\"%s\"}\n", loadavg
        }' <<<"$m"
}

record() { # phase: take a sample, keep it in OUT and in last_sample
    last_sample=$(sample "$1")
    echo "$last_sample" >>"$OUT"
    echo "$last_sample" >&2
}

field() { # json key: a number from last_sample
    sed -E "s/.*\"$2\":([0-9]+).*/\1/" <<<"$1"
}

check_alive() {
    local pid
    kill -0 "$server_pid" 2>/dev/null || die "the server (pid $server_pid) died: see $LOGDIR/server.log"
    for pid in "${client_pids[@]}" "$pub_pid"; do
        [[ -z $pid ]] || kill -0 "$pid" 2>/dev/null || die "load process $pid died: see $LOGDIR"
    done
}

t0=$(date +%s)
"$BIN" serve --listen "$WS" --admin-listen "$ADMIN" --max-connections 19900 \
    >"$LOGDIR/server.log" 2>&1 &
server_pid=$!
for _ in $(seq 100); do
    curl -sf --max-time 1 "http://$ADMIN/healthz" >/dev/null 2>&1 && break
    kill -0 "$server_pid" 2>/dev/null || die "the server did not start: $(tail -3 "$LOGDIR/server.log")"
    sleep 0.1
done
curl -sf --max-time 1 "http://$ADMIN/healthz" >/dev/null || die "the server did not come up on $ADMIN"
sleep 2
echo "soak: server pid $server_pid, logs in $LOGDIR, results in $OUT" >&2
printf '{"kind":"config","stamp":"%s","conns":%d,"duration_s":%d,"topics":%d,"pub_rate":%s,"payload":%d,"slow_share":%s,"churn":%s,"procs":%d,"settle_s":%d,"server_args":"serve --listen %s --admin-listen %s --max-connections 19900","nofile":%d,"nproc":%d}\n' \
    "$STAMP" "$CONNS" "$DURATION" "$TOPICS" "$PUB_RATE" "$PAYLOAD" "$SLOW_SHARE" "$CHURN" \
    "$PROCS" "$SETTLE" "$WS" "$ADMIN" "$(ulimit -n)" "$(nproc)" >>"$OUT"
record baseline
baseline=$last_sample

# Hard bound: the clients stop by themselves well after the run should have ended.
hard_stop=$((RAMP_TIMEOUT + DURATION + 120))
for ((i = 0; i < PROCS; i++)); do
    n=$((CONNS / PROCS + (i < CONNS % PROCS ? 1 : 0)))
    python3 benches/soak_client.py subscribe --listen "$WS" --conns "$n" --topics "$TOPICS" \
        --slow-share "$SLOW_SHARE" --churn "$CHURN" --sources "$SOURCES" \
        --hard-stop "$hard_stop" >"$LOGDIR/client-$i.jsonl" 2>"$LOGDIR/client-$i.err" &
    client_pids+=($!)
done

# Ramp: until the server holds (nearly) CONNS connections.
ramp_start=$(date +%s)
next=$((ramp_start + SAMPLE_EVERY))
while :; do
    check_alive
    open=$(metrics | awk '/^ringws_connections_open[{ ]/ {s += $NF} END {print s + 0}')
    ((open >= CONNS * 99 / 100)) && break
    (($(date +%s) - ramp_start < RAMP_TIMEOUT)) ||
        die "ramp: $open of $CONNS connections open after ${RAMP_TIMEOUT}s"
    if (($(date +%s) >= next)); then record ramp; next=$((next + SAMPLE_EVERY)); fi
    sleep 1
done
echo "soak: $open connections open after $(($(date +%s) - ramp_start))s; load for ${DURATION}s" >&2

python3 benches/soak_client.py publish --admin "$ADMIN" --topics "$TOPICS" --rate "$PUB_RATE" \
    --payload "$PAYLOAD" --hard-stop "$hard_stop" >"$LOGDIR/publisher.jsonl" 2>"$LOGDIR/publisher.err" &
pub_pid=$!
record start
start=$last_sample
load_end=$(($(date +%s) + DURATION))
while (($(date +%s) + SAMPLE_EVERY < load_end)); do
    nap "$SAMPLE_EVERY"
    check_alive
    record load
done
nap $((load_end - $(date +%s) > 0 ? load_end - $(date +%s) : 0))
check_alive
record end
end=$last_sample

stop_load
for f in "$LOGDIR"/client-*.jsonl "$LOGDIR/publisher.jsonl"; do
    line=$(grep '"event": "final"' "$f" | tail -1) || line=
    [[ -n $line ]] && echo "{\"kind\":\"$(basename "$f" .jsonl)\",${line#\{}" >>"$OUT"
done
nap "$SETTLE"
kill -0 "$server_pid" 2>/dev/null || die "the server died after the load: see $LOGDIR/server.log"
record settled
settled=$last_sample

# Client totals over all subscriber processes.
totals=$(cat "$LOGDIR"/client-*.jsonl | grep '"event": "final"' | python3 -c '
import json, sys
t = {}
for line in sys.stdin:
    for k, v in json.loads(line).items():
        if k not in ("event", "pid", "t") and isinstance(v, int):
            t[k] = t.get(k, 0) + v
print(json.dumps(t))')
pub=$(grep '"event": "final"' "$LOGDIR/publisher.jsonl" | tail -1)

fail=()
(($(field "$settled" connections_open) == 0)) || fail+=("connections_open is $(field "$settled" connections_open), not 0")
(($(field "$settled" memory_held_bytes) == 0)) || fail+=("memory_held_bytes is $(field "$settled" memory_held_bytes), not 0")
(($(field "$settled" outbound_queued_bytes) == 0)) || fail+=("outbound_queued_bytes is $(field "$settled" outbound_queued_bytes), not 0")
fd_base=$(field "$baseline" fds)
fd_now=$(field "$settled" fds)
((fd_now - fd_base <= FD_SLACK && fd_base - fd_now <= FD_SLACK)) ||
    fail+=("fds are $fd_now, baseline $fd_base (allowed ±$FD_SLACK)")
[[ $settled != *'"metrics_ok":false'* ]] || fail+=("no /metrics answer after the load")

mib() { awk -v k="$1" 'BEGIN {printf "%.1f", k / 1024}'; }
row() { # label sample
    printf '| %s | %s | %s | %s | %s | %s | %s | %s | %s |\n' "$1" "$(field "$2" connections_open)" \
        "$(field "$2" fds)" "$(mib "$(field "$2" vm_rss_kb)")" "$(mib "$(field "$2" rss_anon_kb)")" \
        "$(field "$2" memory_held_bytes)" "$(field "$2" outbound_queued_bytes)" \
        "$(field "$2" slow_consumer_closes_total)" "$(field "$2" write_stall_closes_total)"
}
{
    echo
    echo "Soak $STAMP: CONNS=$CONNS DURATION=${DURATION}s TOPICS=$TOPICS PUB_RATE=$PUB_RATE/s PAYLOAD=$PAYLOAD B SLOW_SHARE=$SLOW_SHARE CHURN=$CHURN/s PROCS=$PROCS on $(nproc) CPUs"
    echo
    echo "| point | connections | fds | VmRSS MiB | RssAnon MiB | memory_held B | outbound_queued B | slow-consumer closes | write-stall closes |"
    echo "|---|---|---|---|---|---|---|---|---|"
    row "baseline (no clients)" "$baseline"
    row "start of steady state" "$start"
    row "end of load" "$end"
    row "settled (${SETTLE}s after)" "$settled"
    echo
    echo "clients: $totals"
    echo "publisher: $pub"
} | tee "$LOGDIR/report.md"

status=0
if ((${#fail[@]})); then
    status=1
    printf 'soak: FAIL: %s\n' "${fail[@]}"
else
    echo "soak: PASS: accounting back to 0 and fds back to the baseline ($fd_base -> $fd_now)"
fi
fails_json=$(printf '%s\n' "${fail[@]+"${fail[@]}"}" | python3 -c 'import json, sys; print(json.dumps([l.strip() for l in sys.stdin if l.strip()]))')
printf '{"kind":"summary","stamp":"%s","pass":%s,"failures":%s,"fds_baseline":%d,"fds_settled":%d,"clients":%s,"publisher":%s}\n' \
    "$STAMP" "$([[ $status == 0 ]] && echo true || echo false)" "$fails_json" "$fd_base" "$fd_now" \
    "${totals:-null}" "${pub:-null}" >>"$OUT"
exit "$status"
