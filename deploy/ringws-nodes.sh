#!/usr/bin/env bash
# N ringws nodes on one host, behind deploy/haproxy/ringws-nodes.cfg. Node I (from 1) listens
# for WebSocket clients on 127.0.0.1:(BASE_PORT + I - 1) and serves its admin listener
# (/readyz, /healthz, /metrics) on 127.0.0.1:(ADMIN_BASE_PORT + I - 1).
#
#   deploy/ringws-nodes.sh env N [DIR]     write DIR/node-I.env for systemd's ringws@I (DIR: /etc/ringws)
#   deploy/ringws-nodes.sh haproxy N       print the `server` lines of ringws-nodes.cfg's backend
#   deploy/ringws-nodes.sh run N [FLAGS]   run N nodes in the foreground (ringws from PATH or
#                                          $RINGWS), extra FLAGS passed to each; Ctrl-C drains all
#
# Environment: BASE_PORT (9001), ADMIN_BASE_PORT (9101), HOST (127.0.0.1), and the drain each
# node is given: DRAIN_DELAY (3s), DRAIN_SPREAD (30s), DRAIN_TIMEOUT (45s); see
# docs/lifecycle.md, "Gradual drain for a fleet".
set -euo pipefail

BASE_PORT=${BASE_PORT:-9001}
ADMIN_BASE_PORT=${ADMIN_BASE_PORT:-9101}
HOST=${HOST:-127.0.0.1}
DRAIN_DELAY=${DRAIN_DELAY:-3s}
DRAIN_SPREAD=${DRAIN_SPREAD:-30s}
DRAIN_TIMEOUT=${DRAIN_TIMEOUT:-45s}

usage() {
  sed -n '2,13p' "$0" | sed 's/^# \{0,1\}//' >&2
  exit 2
}

count() {
  [[ ${1:-} =~ ^[1-9][0-9]*$ ]] || { echo "N must be a number of nodes, 1 or more: ${1:-}" >&2; exit 2; }
  echo "$1"
}

ws_port() { echo $((BASE_PORT + $1 - 1)); }
admin_port() { echo $((ADMIN_BASE_PORT + $1 - 1)); }

case ${1:-} in
  env)
    n=$(count "${2:-}")
    dir=${3:-/etc/ringws}
    mkdir -p "$dir"
    for i in $(seq "$n"); do
      cat >"$dir/node-$i.env" <<END
# ringws@$i (deploy/systemd/ringws@.service), written by deploy/ringws-nodes.sh
LISTEN=$HOST:$(ws_port "$i")
ADMIN_LISTEN=$HOST:$(admin_port "$i")
DRAIN_DELAY=$DRAIN_DELAY
DRAIN_SPREAD=$DRAIN_SPREAD
DRAIN_TIMEOUT=$DRAIN_TIMEOUT
ARGS=
END
      echo "$dir/node-$i.env"
    done
    ;;
  haproxy)
    n=$(count "${2:-}")
    for i in $(seq "$n"); do
      echo "    server ringws$i $HOST:$(ws_port "$i") port $(admin_port "$i")  # ringws-node"
    done
    ;;
  run)
    n=$(count "${2:-}")
    shift 2
    bin=${RINGWS:-ringws}
    pids=()
    trap 'kill -TERM "${pids[@]}" 2>/dev/null; wait' INT TERM
    for i in $(seq "$n"); do
      "$bin" serve --listen "$HOST:$(ws_port "$i")" --admin-listen "$HOST:$(admin_port "$i")" \
        --drain-delay "$DRAIN_DELAY" --drain-spread "$DRAIN_SPREAD" \
        --drain-timeout "$DRAIN_TIMEOUT" "$@" &
      pids+=("$!")
    done
    wait
    ;;
  *) usage ;;
esac
