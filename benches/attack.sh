#!/usr/bin/env bash
# Hostile and slow clients against one ringws binary (issue 12): each scenario of the issue's
# "Why" section, plus the 2 GiB memory cgroup with 2,000 attackers, with the server's peak and
# settled RSS, RSS per attacking connection, whether and when the server closed the attackers
# (and with which code), and what honest clients saw.
#
#   bash benches/attack.sh                            # full run, about 8 minutes (386-474 s here)
#   QUICK=1 bash benches/attack.sh                    # smoke run, about 2 minutes (shrunk windows)
#   RINGWS=path/to/ringws bash benches/attack.sh      # another binary (default target/release/ringws)
#   SCENARIOS="a e oom" bash benches/attack.sh        # some scenarios only (a b c d e f g h hfd i oom)
#   RINGWS_REV=abc123 RINGWS=... bash benches/attack.sh  # label the results with the revision built
#                                                        # (ringws_build_info says "unknown" outside git)
#
# The server runs with its default settings except --app (echo, or pubsub for g and i),
# --cores 2 (CORES), loopback listen addresses and --log warn; EXTRA_ARGS="..." appends flags.
# Every other setting (windows, counts, TRICKLE_PERIOD=25, SETTLE=10, ...) is an environment
# variable listed in SETTINGS_SPEC at the top of benches/attack.py.
#
# Results: one JSON line per scenario in benches/results/attack-<UTC stamp>.jsonl (OUT=FILE to
# choose), and a Markdown table on stdout (`python3 benches/attack.py --table FILE` reprints it).
# The oom scenario needs root and cgroup v1 memory (/sys/fs/cgroup/memory); it creates a child
# group, puts the server in it and removes the group afterwards. Every server is stopped by its
# pid when the run ends, on Ctrl-C too.
set -euo pipefail
cd "$(dirname "$0")/.."

RINGWS=${RINGWS:-target/release/ringws}
if [[ ! -x $RINGWS ]]; then
    echo "attack.sh: no ringws binary at $RINGWS (cargo build --release, or set RINGWS=...)" >&2
    exit 2
fi
RINGWS=$(realpath "$RINGWS")
OUT=${OUT:-benches/results/attack-$(date -u +%Y%m%dT%H%M%SZ).jsonl}
mkdir -p "$(dirname "$OUT")"

state=$(mktemp -d /tmp/ringws-attack.XXXXXX)
driver=""

cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    if [[ -n $driver ]] && kill -0 "$driver" 2>/dev/null; then
        kill -TERM "$driver" 2>/dev/null || true
        for _ in $(seq 100); do
            kill -0 "$driver" 2>/dev/null || break
            sleep 0.1
        done
        kill -KILL "$driver" 2>/dev/null || true
    fi
    # servers the driver started and could not stop (it was killed): by pid, if still ours
    if [[ -f $state/pids ]]; then
        while read -r pid; do
            if [[ -r /proc/$pid/cmdline ]] && tr '\0' ' ' <"/proc/$pid/cmdline" | grep -qF "$RINGWS serve"; then
                kill -KILL "$pid" 2>/dev/null || true
            fi
        done <"$state/pids"
    fi
    if [[ -f $state/helpers ]]; then
        while read -r pid; do
            if [[ -r /proc/$pid/cmdline ]] && tr '\0' ' ' <"/proc/$pid/cmdline" | grep -qF "attack.py --honest"; then
                kill -KILL "$pid" 2>/dev/null || true
            fi
        done <"$state/helpers"
    fi
    if [[ -f $state/cgroups ]]; then
        while read -r cg; do
            if [[ -d $cg ]]; then
                for _ in $(seq 50); do
                    rmdir "$cg" 2>/dev/null && break
                    sleep 0.1
                done
            fi
        done <"$state/cgroups"
    fi
    rm -rf "$state"
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

ATTACK_STATE=$state RINGWS=$RINGWS python3 benches/attack.py "$OUT" &
driver=$!
wait "$driver"
