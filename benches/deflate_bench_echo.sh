#!/usr/bin/env bash
# Server CPU per echo of the ~1 KiB JSON message (benches/corpus/json-1024.json), compressed
# (permessage-deflate negotiated) and not, in the same run, with ringws's own load generator.
#
#   server: `ringws serve --app echo --cores 1 --compression on` (defaults otherwise:
#           compression_level 1, compression_min_size 256, so the 1 KiB echo goes out
#           compressed), confined to SERVER_CPU;
#   client: `ringws bench echo --text --payload-file ... --server-pid PID` on CLIENT_CPU, CONNS
#           connections, closed loop; with `--deflate` every connection negotiates
#           permessage-deflate, sends the message compressed and inflates every echo.
#
# The server's CPU per message is utime+stime from /proc/PID/stat over the measured window,
# divided by the echoes in it (`server_cpu_us_per_op`). ROUNDS rounds alternate the two modes
# against one server; the load average is read before and after each run. One JSON line per
# run goes to OUT, then medians and the ratio.
#
# Usage: benches/deflate_bench_echo.sh                 (builds target/release/ringws first)
#        ROUNDS=7 SECS=5 CONNS=50 benches/deflate_bench_echo.sh
set -euo pipefail
cd "$(dirname "$0")/.."

BIN=${BIN:-target/release/ringws}
ROUNDS=${ROUNDS:-5}
SECS=${SECS:-5}
CONNS=${CONNS:-50}
SERVER_CPU=${SERVER_CPU:-0}
CLIENT_CPU=${CLIENT_CPU:-1}
OUT=${OUT:-/tmp/ringws-deflate-bench-echo.jsonl}
WS=127.0.0.1:19121
MESSAGE=benches/corpus/json-1024.json

if [[ -z ${BIN_PREBUILT:-} ]]; then cargo build --release --quiet; fi
[[ -f $MESSAGE ]] || python3 benches/json_corpus.py

taskset -c "$SERVER_CPU" "$BIN" serve --app echo --cores 1 --compression on --listen "$WS" \
    --admin-listen off --log warn >/dev/null 2>&1 &
server=$!
trap 'kill $server 2>/dev/null || true' EXIT
for _ in $(seq 100); do
    (exec 3<>"/dev/tcp/${WS%:*}/${WS#*:}") 2>/dev/null && break
    sleep 0.05
done

: >"$OUT"
for round in $(seq "$ROUNDS"); do
    modes=(plain deflate)
    ((round % 2 == 0)) && modes=(deflate plain)
    for mode in "${modes[@]}"; do
        flag=()
        [[ $mode == deflate ]] && flag=(--deflate)
        before=$(cut -d' ' -f1 /proc/loadavg)
        line=$(taskset -c "$CLIENT_CPU" "$BIN" bench echo --url "ws://$WS/" --conns "$CONNS" \
            --text --payload-file "$MESSAGE" --warmup 1 --duration "$SECS" \
            --server-pid "$server" "${flag[@]}" --json)
        echo "${line%\}},\"label\":\"$mode\",\"load_before\":$before,\"loadavg\":\"$(cut -d' ' -f1-3 /proc/loadavg)\"}" | tee -a "$OUT"
    done
done

python3 - "$OUT" <<'PY'
import json, statistics, sys
runs = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
med = {}
for mode in ("plain", "deflate"):
    rs = [r for r in runs if r["label"] == mode]
    med[mode] = statistics.median(r["server_cpu_us_per_op"] for r in rs)
    rate = statistics.median(r["msgs_per_s"] for r in rs)
    errors = sum(r["errors_total"] for r in rs)
    each = ", ".join("%.2f" % r["server_cpu_us_per_op"] for r in rs)
    print(f"{mode:8} {len(rs)} runs: server CPU per echo median {med[mode]:.2f} us "
          f"(runs: {each}), "
          f"{rate:,.0f} echoes/s median, errors {errors}")
loads = [r["load_before"] for r in runs]
print(f"deflate / plain: {med['deflate'] / med['plain']:.2f}x, +{med['deflate'] - med['plain']:.2f} us; "
      f"load average before the runs: {min(loads):.2f}-{max(loads):.2f}")
PY
