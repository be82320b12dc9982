#!/usr/bin/env bash
# sentinel-env.sh: start and stop a Sentinel group for the dlock tests: one master, two replicas
# and three sentinels watching them as "mymaster".
#
#   sentinel-env.sh start DIR [secure]   make DIR, start the 6 servers, wait until every
#                               sentinel sees both replicas and the other two sentinels, write DIR/env
#   sentinel-env.sh stop DIR    stop every server started in DIR (by PID file only); idempotent
#
# "secure" makes a group that is reached over TLS only (rediss-sentinel://): every server also
# listens on a TLS port (certificates from a CA made here), replication and the sentinels' own
# links run over TLS, the data nodes require NODE_PASS and the sentinels SENTINEL_PASS. The plain
# ports stay, for the tests' raw hiredis checks (hiredis 0.14 has no TLS), with the passwords.
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
# and in a secure group also (the URL then being rediss-sentinel://, with the TLS ports):
#   DLOCK_TEST_SENTINEL_TLS_PORT_N, DLOCK_TEST_SENTINEL_NODE_TLS_PORT_N   (N = 1..3)
#   DLOCK_TEST_SENTINEL_PASSWORD, DLOCK_TEST_SENTINEL_NODE_PASSWORD
#   DLOCK_TEST_SENTINEL_CA, DLOCK_TEST_SENTINEL_OTHER_CA
# Only Debian 12 packages are used: bash, coreutils, redis-server 7.0 (and its --sentinel mode),
# redis-tools.
set -euo pipefail
# shellcheck source=redis-lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/redis-lib.sh"

MASTER_NAME=mymaster
NODE_PASS=node-secret
SENTINEL_PASS=sentinel-secret
SECURE=0

die() {
    echo "sentinel-env.sh: $*" >&2
    exit 1
}

# cli NAME PORT ARGS...: redis-cli to server NAME's plain port, with its password if any.
cli() {
    local name=$1 port=$2 pass=""
    shift 2
    if [ "$SECURE" = 1 ]; then
        case $name in node*) pass=$NODE_PASS ;; *) pass=$SENTINEL_PASS ;; esac
    fi
    REDISCLI_AUTH=$pass timeout 5 redis-cli -h 127.0.0.1 -p "$port" "$@" 2>/dev/null
}

# The port clients and the other servers use for server NAME: its TLS port in a secure group.
public_port() {
    local port
    port=$(cat "$DIR/$1.port")
    [ "$SECURE" = 1 ] && port=$((port + 1))
    echo "$port"
}

# write_secure NAME PORT: the TLS and password lines of a secure group's server.
write_secure() {
    local name=$1 port=$2
    echo "tls-port $((port + 1))"
    echo "tls-cert-file $DIR/server.crt"
    echo "tls-key-file $DIR/server.key"
    echo "tls-ca-cert-file $DIR/ca.crt"
    echo "tls-auth-clients no"
    echo "tls-replication yes"
    case $name in
    node*)
        echo "requirepass $NODE_PASS"
        echo "masterauth $NODE_PASS"
        ;;
    s*)
        echo "requirepass $SENTINEL_PASS"
        echo "sentinel sentinel-pass $SENTINEL_PASS"
        echo "sentinel auth-pass $MASTER_NAME $NODE_PASS"
        ;;
    esac
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
                echo "replicaof 127.0.0.1 $(public_port node1)"
            fi
            ;;
        s*)
            echo "sentinel monitor $MASTER_NAME 127.0.0.1 $(public_port node1) 2"
            echo "sentinel down-after-milliseconds $MASTER_NAME 1000"
            echo "sentinel failover-timeout $MASTER_NAME 3000"
            ;;
        esac
        if [ "$SECURE" = 1 ]; then
            write_secure "$name" "$port"
        fi
    } >"$DIR/$name.conf"
}

# start NAME: start one server, retrying with a new port while the bind fails.
start() {
    local name=$1 port pid mode=()
    case $name in s*) mode=(--sentinel) ;; esac
    for _ in 1 2 3 4 5 6 7 8 9 10; do
        port=$(dl_free_port)
        if [ "$SECURE" = 1 ] && dl_port_in_use $((port + 1)); then
            continue
        fi
        echo "$port" >"$DIR/$name.port"
        write_conf "$name" "$port"
        rm -f "$DIR/$name.pid"
        : >"$DIR/$name.log"
        redis-server "$DIR/$name.conf" "${mode[@]}" </dev/null >/dev/null 2>&1 || true
        for _ in $(seq 1 100); do
            pid=$(cat "$DIR/$name.pid" 2>/dev/null || true)
            if dl_pid_is_redis "$pid" && [ "$(cli "$name" "$port" ping)" = PONG ]; then
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
    cli s "$1" sentinel master "$MASTER_NAME" | awk -v f="$2" 'prev == f { print; exit } { prev = $0 }'
}

ready() {
    local n port
    for n in 2 3; do
        cli node "$(cat "$DIR/node$n.port")" info replication | grep -q "master_link_status:up" ||
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

[ $# -eq 2 ] || [ $# -eq 3 ] || die "usage: sentinel-env.sh start|stop DIR [secure]"
cmd=$1
DIR=$2
case ${3:-} in
"") ;;
secure) SECURE=1 ;;
*) die "usage: sentinel-env.sh start|stop DIR [secure]" ;;
esac

case $cmd in
start)
    command -v redis-server >/dev/null || die "redis-server not found (apt-get install redis-server)"
    command -v redis-cli >/dev/null || die "redis-cli not found (apt-get install redis-tools)"
    mkdir -p "$DIR"
    DIR=$(cd "$DIR" && pwd)
    stop_dir
    rm -f "$DIR/env"
    if [ "$SECURE" = 1 ]; then
        command -v openssl >/dev/null || die "openssl not found (apt-get install openssl)"
        dl_make_certs "$DIR"
    fi
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
        scheme=redis-sentinel
        [ "$SECURE" = 1 ] && scheme=rediss-sentinel
        echo "DLOCK_TEST_SENTINEL_URL=$scheme://127.0.0.1:$(public_port s1),127.0.0.1:$(public_port s2),127.0.0.1:$(public_port s3)#$MASTER_NAME"
        if [ "$SECURE" = 1 ]; then
            echo "DLOCK_TEST_SENTINEL_PASSWORD=$SENTINEL_PASS"
            echo "DLOCK_TEST_SENTINEL_NODE_PASSWORD=$NODE_PASS"
            echo "DLOCK_TEST_SENTINEL_CA=$DIR/ca.crt"
            echo "DLOCK_TEST_SENTINEL_OTHER_CA=$DIR/other-ca.crt"
            for n in 1 2 3; do
                echo "DLOCK_TEST_SENTINEL_TLS_PORT_$n=$(public_port "s$n")"
                echo "DLOCK_TEST_SENTINEL_NODE_TLS_PORT_$n=$(public_port "node$n")"
            done
        fi
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
