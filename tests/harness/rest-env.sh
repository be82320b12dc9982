#!/bin/bash
# Starts or stops the Upstash-compatible REST gateway (tests/gateway) in front of the plain
# redis-server that redis-env.sh started in DIR, for the REST variants of the suites; and, when
# nghttpx (Debian package nghttp2-proxy) is installed, nghttpx in front of the gateway: HTTPS
# with HTTP/2 (ALPN h2) on the harness's server certificate, HTTP/1.1 to the gateway.
#
#   rest-env.sh start DIR GATEWAY_BINARY TOKEN   appends DLOCK_TEST_REST_URL to DIR/env, and
#                                                DLOCK_TEST_REST_H2_URL, DLOCK_TEST_REST_CA (the
#                                                CA of nghttpx's certificate) and
#                                                DLOCK_TEST_REST_H2_LOG (nghttpx's access log:
#                                                "ALPN METHOD PATH STATUS", one line a request)
#   rest-env.sh h2proxy DIR NAME BACKEND_PORT    one more nghttpx, in front of 127.0.0.1:BACKEND_PORT
#                                                (a test's private gateway): prints its https URL,
#                                                PID in DIR/h2proxy-NAME.pid, requests logged to
#                                                the same access log; exit 77 without nghttpx
#   rest-env.sh stop DIR                         kills them all by their PIDs (idempotent)
set -euo pipefail

die() {
    echo "rest-env.sh: $*" >&2
    exit 1
}

# stop_pid FILE: TERM, then KILL after 2.5 s, the process whose PID FILE holds; removes FILE.
stop_pid() {
    [ -f "$1" ] || return 0
    local pid
    pid=$(cat "$1")
    if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
        kill "$pid"
        for _ in $(seq 1 50); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.05
        done
        kill -9 "$pid" 2>/dev/null || true
    fi
    rm -f "$1"
}

# start_nghttpx BACKEND_PORT NAME: HTTPS + HTTP/2 in front of 127.0.0.1:BACKEND_PORT on a free
# port (retried on a clash); sets H2_PORT. --conf /dev/null keeps the system's
# /etc/nghttpx/nghttpx.conf out; one process, so its PID ($!: setsid execs it) is the one to
# stop, from DIR/NAME.pid. Each SSE stream holds one backend connection: allow plenty. Every
# proxy appends to the one access log, so a suite's check sees all of its requests.
start_nghttpx() {
    local backend=$1 name=$2 port
    for _ in 1 2 3 4 5 6 7 8 9 10; do
        port=$((20000 + (RANDOM * 32768 + RANDOM) % 40000))
        rm -f "$DIR/$name.pid"
        : >"$DIR/$name.log"
        setsid nghttpx --conf=/dev/null --single-process --no-ocsp \
            --frontend="127.0.0.1,$port" --backend="127.0.0.1,$backend;;proto=http/1.1" \
            --backend-connections-per-host=1024 --frontend-http2-max-concurrent-streams=1024 \
            --errorlog-file="$DIR/$name.log" \
            --accesslog-file="$DIR/nghttpx.access" \
            --accesslog-format='$alpn $method $path $status' \
            "$DIR/server.key" "$DIR/server.crt" </dev/null >/dev/null 2>&1 &
        echo $! >"$DIR/$name.pid"
        for _ in $(seq 1 100); do
            if grep -q "Listening on 127.0.0.1:$port" "$DIR/$name.log" 2>/dev/null; then
                H2_PORT=$port
                return 0
            fi
            grep -q "Address already in use" "$DIR/$name.log" 2>/dev/null && break
            sleep 0.05
        done
        stop_pid "$DIR/$name.pid"
    done
    die "nghttpx did not start; see $DIR/$name.log"
}

have_nghttpx() {
    command -v nghttpx >/dev/null || {
        echo "rest-env.sh: nghttpx not found (apt-get install nghttp2-proxy): no HTTP/2 run" >&2
        return 1
    }
}

cmd=${1:-}
DIR=${2:-}
[ -n "$DIR" ] || die "usage: rest-env.sh start|stop|h2proxy DIR [GATEWAY TOKEN | NAME BACKEND_PORT]"

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
    sed -i '/^DLOCK_TEST_REST_URL=/d; /^DLOCK_TEST_REST_H2_/d; /^DLOCK_TEST_REST_CA=/d' "$DIR/env"
    echo "DLOCK_TEST_REST_URL=http://127.0.0.1:$(cat "$DIR/rest.port")" >>"$DIR/env"
    if have_nghttpx; then
        rm -f "$DIR/nghttpx.access"
        start_nghttpx "$(cat "$DIR/rest.port")" nghttpx
        {
            echo "DLOCK_TEST_REST_H2_URL=https://127.0.0.1:$H2_PORT"
            echo "DLOCK_TEST_REST_CA=$DIR/ca.crt"
            echo "DLOCK_TEST_REST_H2_LOG=$DIR/nghttpx.access"
        } >>"$DIR/env"
    fi
    ;;
h2proxy)
    name=${3:-}
    backend=${4:-}
    [[ "$name" =~ ^[A-Za-z0-9_-]+$ && "$backend" =~ ^[0-9]+$ ]] ||
        die "usage: rest-env.sh h2proxy DIR NAME BACKEND_PORT"
    have_nghttpx || exit 77
    start_nghttpx "$backend" "h2proxy-$name"
    echo "https://127.0.0.1:$H2_PORT"
    ;;
stop)
    for f in "$DIR"/h2proxy-*.pid; do
        stop_pid "$f"
    done
    stop_pid "$DIR/nghttpx.pid"
    stop_pid "$DIR/rest.pid"
    ;;
*)
    die "usage: rest-env.sh start|stop|h2proxy DIR [GATEWAY TOKEN | NAME BACKEND_PORT]"
    ;;
esac
