#!/bin/bash
# Starts or stops the Upstash-compatible REST gateway (tests/gateway) in front of the plain
# redis-server that redis-env.sh started in DIR, for the REST variants of the suites.
#
#   rest-env.sh start DIR GATEWAY_BINARY TOKEN   appends DLOCK_TEST_REST_URL to DIR/env
#   rest-env.sh stop DIR                         kills the gateway by its PID (idempotent)
set -euo pipefail

die() {
    echo "rest-env.sh: $*" >&2
    exit 1
}

cmd=${1:-}
DIR=${2:-}
[ -n "$DIR" ] || die "usage: rest-env.sh start|stop DIR [GATEWAY TOKEN]"

case $cmd in
start)
    gateway=${3:-}
    token=${4:-}
    [ -x "$gateway" ] || die "gateway binary '$gateway' is not executable"
    [ -f "$DIR/env" ] || die "$DIR/env is missing: run redis-env.sh start first"
    port=$(sed -n 's/^DLOCK_TEST_PORT=//p' "$DIR/env")
    [ -n "$port" ] || die "DLOCK_TEST_PORT missing from $DIR/env"
    rm -f "$DIR/rest.port"
    # setsid: the gateway must outlive this script, which CTest waits for.
    setsid "$gateway" --redis "127.0.0.1:$port" --token "$token" --port 0 \
        --port-file "$DIR/rest.port" >"$DIR/rest.log" 2>&1 </dev/null &
    echo $! >"$DIR/rest.pid"
    for _ in $(seq 1 100); do
        [ -s "$DIR/rest.port" ] && break
        sleep 0.05
    done
    [ -s "$DIR/rest.port" ] || die "gateway did not start; see $DIR/rest.log"
    sed -i '/^DLOCK_TEST_REST_URL=/d' "$DIR/env"
    echo "DLOCK_TEST_REST_URL=http://127.0.0.1:$(cat "$DIR/rest.port")" >>"$DIR/env"
    ;;
stop)
    if [ -f "$DIR/rest.pid" ]; then
        pid=$(cat "$DIR/rest.pid")
        if kill -0 "$pid" 2>/dev/null; then
            kill "$pid"
            for _ in $(seq 1 50); do
                kill -0 "$pid" 2>/dev/null || break
                sleep 0.05
            done
            kill -9 "$pid" 2>/dev/null || true
        fi
        rm -f "$DIR/rest.pid"
    fi
    ;;
*)
    die "usage: rest-env.sh start|stop DIR [GATEWAY TOKEN]"
    ;;
esac
