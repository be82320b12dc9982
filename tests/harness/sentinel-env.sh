#!/usr/bin/env bash
# sentinel-env.sh: start and stop a Sentinel group for the dlock tests: one master, two replicas
# and three sentinels watching them as "mymaster".
#
#   sentinel-env.sh start DIR   make DIR, start the 6 servers, wait until every sentinel sees both
#                               replicas and the other two sentinels, write DIR/env
#   sentinel-env.sh stop DIR    stop every server started in DIR (by PID file only); idempotent
#
# All on 127.0.0.1 at free ports picked at random and retried on a clash. down-after-milliseconds
# is 1000 and failover-timeout 3000, so after kill -9 of the master a replica is promoted in
# about 5 s; SENTINEL FAILOVER mymaster forces a graceful one. Each data node has
# DIR/nodeN.conf (node1 starts as the master), so a test may kill one and start it again with
# `redis-server DIR/nodeN.conf`; the sentinels then make it a replica of the current master.
#
# DIR/env (read by tests/support.c's dlt_env):
#   DLOCK_TEST_SENTINEL_URL         redis-sentinel://127.0.0.1:S1,127.0.0.1:S2,127.0.0.1:S3#mymaster
#   DLOCK_TEST_SENTINEL_MASTER      mymaster
#   DLOCK_TEST_SENTINEL_PORT_N, DLOCK_TEST_SENTINEL_PID_FILE_N            (N = 1..3)
#   DLOCK_TEST_SENTINEL_NODE_PORT_N, _NODE_PID_FILE_N, _NODE_CONF_N      (N = 1..3)
# Only Debian 12 packages are used: bash, coreutils, redis-server 7.0 (and its --sentinel mode),
# redis-tools.
set -euo pipefail
# shellcheck source=redis-lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/redis-lib.sh"

MASTER_NAME=mymaster

die() {
    echo "sentinel-env.sh: $*" >&2
    exit 1
}

cli() {
    local port=$1
    shift
    timeout 5 redis-cli -h 127.0.0.1 -p "$port" "$@" 2>/dev/null
}

# write_conf NAME PORT: a data node (node1..3) or a sentinel (s1..3).
write_conf() {
    local name=$1 port=$2
    {
        echo "bind 127.0.0.1"
        echo "port $port"
        echo "daemonize yes"
        echo "pidfile $DIR/$name.pid"
        echo "logfile $DIR/$name.log"
        echo "dir $DIR"
        echo "protected-mode no"
        case $name in
        node*)
            echo "save \"\""
            echo "appendonly no"
            echo "dbfilename $name.rdb"
            if [ "$name" != node1 ]; then
                echo "replicaof 127.0.0.1 $(cat "$DIR/node1.port")"
            fi
            ;;
        s*)
            echo "sentinel monitor $MASTER_NAME 127.0.0.1 $(cat "$DIR/node1.port") 2"
            echo "sentinel down-after-milliseconds $MASTER_NAME 1000"
            echo "sentinel failover-timeout $MASTER_NAME 3000"
            ;;
        esac
    } >"$DIR/$name.conf"
}

# start NAME: start one server, retrying with a new port while the bind fails.
start() {
    local name=$1 port pid mode=()
    case $name in s*) mode=(--sentinel) ;; esac
    for _ in 1 2 3 4 5 6 7 8 9 10; do
        port=$(dl_free_port)
        echo "$port" >"$DIR/$name.port"
        write_conf "$name" "$port"
        rm -f "$DIR/$name.pid"
        : >"$DIR/$name.log"
        redis-server "$DIR/$name.conf" "${mode[@]}" </dev/null >/dev/null 2>&1 || true
        for _ in $(seq 1 100); do
            pid=$(cat "$DIR/$name.pid" 2>/dev/null || true)
            if dl_pid_is_redis "$pid" && [ "$(cli "$port" ping)" = PONG ]; then
                return 0
            fi
            if grep -q "Address already in use\|Could not create server\|Failed listening" \
                "$DIR/$name.log" 2>/dev/null; then
                break
            fi
            sleep 0.05
        done
        dl_redis_abandon "$DIR/$name.pid" "$DIR/$name.log" "sentinel-env.sh: $name on port $port"
    done
    die "could not start $name; see $DIR/$name.log"
}

# The value of FIELD in `SENTINEL MASTER` on sentinel port $1 (the reply alternates names and
# values, one per line).
master_field() {
    cli "$1" sentinel master "$MASTER_NAME" | awk -v f="$2" 'prev == f { print; exit } { prev = $0 }'
}

ready() {
    local n port
    for n in 2 3; do
        cli "$(cat "$DIR/node$n.port")" info replication | grep -q "master_link_status:up" ||
            return 1
    done
    for n in 1 2 3; do
        port=$(cat "$DIR/s$n.port")
        [ "$(master_field "$port" num-slaves)" = 2 ] || return 1
        [ "$(master_field "$port" num-other-sentinels)" = 2 ] || return 1
    done
}

stop_dir() {
    local name pidfiles=()
    for name in s1 s2 s3 node1 node2 node3; do
        pidfiles+=("$DIR/$name.pid")
    done
    dl_redis_stop "${pidfiles[@]}"
}

[ $# -eq 2 ] || die "usage: sentinel-env.sh start|stop DIR"
cmd=$1
DIR=$2

case $cmd in
start)
    command -v redis-server >/dev/null || die "redis-server not found (apt-get install redis-server)"
    command -v redis-cli >/dev/null || die "redis-cli not found (apt-get install redis-tools)"
    mkdir -p "$DIR"
    DIR=$(cd "$DIR" && pwd)
    stop_dir
    rm -f "$DIR/env"
    for name in node1 node2 node3 s1 s2 s3; do
        start "$name"
    done
    for _ in $(seq 1 300); do
        ready && break
        sleep 0.1
    done
    ready || die "the sentinel group did not become ready in 30 s; see $DIR/*.log"
    {
        echo "DLOCK_TEST_SENTINEL_DIR=$DIR"
        echo "DLOCK_TEST_SENTINEL_URL=redis-sentinel://127.0.0.1:$(cat "$DIR/s1.port"),127.0.0.1:$(cat "$DIR/s2.port"),127.0.0.1:$(cat "$DIR/s3.port")#$MASTER_NAME"
        echo "DLOCK_TEST_SENTINEL_MASTER=$MASTER_NAME"
        for n in 1 2 3; do
            echo "DLOCK_TEST_SENTINEL_PORT_$n=$(cat "$DIR/s$n.port")"
            echo "DLOCK_TEST_SENTINEL_PID_FILE_$n=$DIR/s$n.pid"
            echo "DLOCK_TEST_SENTINEL_CONF_$n=$DIR/s$n.conf"
            echo "DLOCK_TEST_SENTINEL_NODE_PORT_$n=$(cat "$DIR/node$n.port")"
            echo "DLOCK_TEST_SENTINEL_NODE_PID_FILE_$n=$DIR/node$n.pid"
            echo "DLOCK_TEST_SENTINEL_NODE_CONF_$n=$DIR/node$n.conf"
        done
    } >"$DIR/env.tmp"
    mv "$DIR/env.tmp" "$DIR/env"
    echo "sentinel-env.sh: sentinel group up; environment in $DIR/env"
    ;;
stop)
    if [ -d "$DIR" ]; then
        DIR=$(cd "$DIR" && pwd)
        stop_dir
        rm -f "$DIR/env"
    fi
    ;;
*)
    die "usage: sentinel-env.sh start|stop DIR"
    ;;
esac
