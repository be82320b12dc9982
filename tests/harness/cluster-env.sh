#!/usr/bin/env bash
# cluster-env.sh: start and stop a Redis Cluster of 3 masters and 3 replicas for the dlock tests.
#
#   cluster-env.sh start DIR   make DIR, start 6 cluster-enabled servers, create the cluster,
#                              wait until every node says cluster_state:ok, write DIR/env
#   cluster-env.sh stop DIR    stop every server started in DIR (by PID file only); idempotent
#
# Nodes listen on 127.0.0.1 at free ports P for plain TCP, P+1 for TLS (certificates from a CA
# made here) and P+10000 for the cluster bus, picked at random and retried on a clash. The bus
# and replication run over TLS (tls-cluster, tls-replication), so the cluster tells TLS clients
# its TLS ports (CLUSTER SLOTS, MOVED, ASK) and plain clients its plain ones: the same cluster
# serves the redis:// and the rediss:// tests. Each node has DIR/nodeN.conf, so a test may kill one (kill -9) and start it
# again with `redis-server DIR/nodeN.conf`: it keeps its node id (DIR/nodeN/nodes.conf) and
# rejoins, as a replica if its slots were failed over meanwhile. cluster-node-timeout is 2 s, so a
# killed master's replica takes over in about 3 s.
#
# DIR/env (shell-sourceable, read by tests/support.c's dlt_env):
#   DLOCK_TEST_CLUSTER_URL         redis://127.0.0.1:P1 (any node works as the one URL)
#   DLOCK_TEST_CLUSTER_TLS_URL     rediss://127.0.0.1:P1+1, to verify with DLOCK_TEST_CLUSTER_CA
#   DLOCK_TEST_CLUSTER_CA, DLOCK_TEST_CLUSTER_OTHER_CA   the CA, and one that must fail
#   DLOCK_TEST_CLUSTER_SEEDS       the 6 node URLs, comma-separated
#   DLOCK_TEST_CLUSTER_NODES       6
#   DLOCK_TEST_CLUSTER_PORT_N, DLOCK_TEST_CLUSTER_PID_FILE_N, DLOCK_TEST_CLUSTER_CONF_N (N = 1..6)
# Only Debian 12 packages are used: bash, coreutils, redis-server 7.0, redis-tools, openssl.
set -euo pipefail
# shellcheck source=redis-lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/redis-lib.sh"

NODES=6
NODE_TIMEOUT_MS=2000

die() {
    echo "cluster-env.sh: $*" >&2
    exit 1
}

# A port P with P+1 (TLS) and P+10000 (bus) free too; all stay below 65536.
random_port() {
    local p
    while :; do
        p=$((20000 + (RANDOM * 32768 + RANDOM) % 25000))
        if ! dl_port_in_use "$p" && ! dl_port_in_use $((p + 1)) && ! dl_port_in_use $((p + 10000)); then
            echo "$p"
            return
        fi
    done
}

cli() {
    local port=$1
    shift
    timeout 5 redis-cli -h 127.0.0.1 -p "$port" "$@" 2>/dev/null
}

write_conf() {
    local n=$1 port=$2
    mkdir -p "$DIR/node$n"
    {
        echo "bind 127.0.0.1"
        echo "port $port"
        echo "tls-port $((port + 1))"
        echo "tls-cert-file $DIR/server.crt"
        echo "tls-key-file $DIR/server.key"
        echo "tls-ca-cert-file $DIR/ca.crt"
        echo "tls-auth-clients no"
        echo "tls-cluster yes"
        echo "tls-replication yes"
        echo "cluster-port $((port + 10000))"
        echo "daemonize yes"
        echo "pidfile $DIR/node$n.pid"
        echo "logfile $DIR/node$n.log"
        echo "dir $DIR/node$n"
        echo "cluster-enabled yes"
        echo "cluster-config-file $DIR/node$n/nodes.conf"
        echo "cluster-node-timeout $NODE_TIMEOUT_MS"
        echo "save \"\""
        echo "appendonly no"
        echo "protected-mode no"
    } >"$DIR/node$n.conf"
}

# start_node N: start node N on a free port, retrying with new ports while the bind fails.
start_node() {
    local n=$1 port pid
    for _ in 1 2 3 4 5 6 7 8 9 10; do
        port=$(random_port)
        rm -rf "$DIR/node$n" "$DIR/node$n.pid"
        write_conf "$n" "$port"
        : >"$DIR/node$n.log"
        redis-server "$DIR/node$n.conf" </dev/null >/dev/null 2>&1 || true
        echo "$port" >"$DIR/node$n.port"
        for _ in $(seq 1 100); do
            pid=$(cat "$DIR/node$n.pid" 2>/dev/null || true)
            if dl_pid_is_redis "$pid" && [ "$(cli "$port" ping)" = PONG ]; then
                return 0
            fi
            if grep -q "Address already in use\|Could not create server\|Failed listening" \
                "$DIR/node$n.log" 2>/dev/null; then
                break
            fi
            sleep 0.05
        done
        dl_redis_abandon "$DIR/node$n.pid" "$DIR/node$n.log" "cluster-env.sh: node$n on port $port"
    done
    die "could not start node$n; see $DIR/node$n.log"
}

# True once every node agrees the cluster is whole: state ok, 6 nodes known, every replica's
# link to its master up (so a failover test can promote one at once).
cluster_ready() {
    local n port info
    for n in $(seq 1 $NODES); do
        port=$(cat "$DIR/node$n.port")
        info=$(cli "$port" cluster info) || return 1
        grep -q "cluster_state:ok" <<<"$info" || return 1
        grep -q "cluster_known_nodes:$NODES" <<<"$info" || return 1
        info=$(cli "$port" info replication) || return 1
        if grep -q "role:slave" <<<"$info"; then
            grep -q "master_link_status:up" <<<"$info" || return 1
        fi
    done
}

stop_dir() {
    local n pidfiles=()
    for n in $(seq 1 $NODES); do
        pidfiles+=("$DIR/node$n.pid")
    done
    dl_redis_stop "${pidfiles[@]}"
}

[ $# -eq 2 ] || die "usage: cluster-env.sh start|stop DIR"
cmd=$1
DIR=$2

case $cmd in
start)
    command -v redis-server >/dev/null || die "redis-server not found (apt-get install redis-server)"
    command -v redis-cli >/dev/null || die "redis-cli not found (apt-get install redis-tools)"
    command -v openssl >/dev/null || die "openssl not found (apt-get install openssl)"
    mkdir -p "$DIR"
    DIR=$(cd "$DIR" && pwd)
    stop_dir
    rm -f "$DIR/env"
    dl_make_certs "$DIR"
    addrs=()
    for n in $(seq 1 $NODES); do
        start_node "$n"
        addrs+=("127.0.0.1:$(cat "$DIR/node$n.port")")
    done
    # The first three become masters, each of the others a replica of one of them.
    timeout 30 redis-cli --cluster create "${addrs[@]}" --cluster-replicas 1 --cluster-yes \
        >"$DIR/create.log" 2>&1 || die "redis-cli --cluster create failed; see $DIR/create.log"
    for _ in $(seq 1 300); do
        cluster_ready && break
        sleep 0.1
    done
    cluster_ready || die "the cluster did not become ready in 30 s; see $DIR/node*.log"
    {
        echo "DLOCK_TEST_CLUSTER_DIR=$DIR"
        echo "DLOCK_TEST_CLUSTER_URL=redis://${addrs[0]}"
        echo "DLOCK_TEST_CLUSTER_TLS_URL=rediss://127.0.0.1:$(($(cat "$DIR/node1.port") + 1))"
        echo "DLOCK_TEST_CLUSTER_CA=$DIR/ca.crt"
        echo "DLOCK_TEST_CLUSTER_OTHER_CA=$DIR/other-ca.crt"
        seeds=""
        for a in "${addrs[@]}"; do
            seeds="$seeds${seeds:+,}redis://$a"
        done
        echo "DLOCK_TEST_CLUSTER_SEEDS=$seeds"
        echo "DLOCK_TEST_CLUSTER_NODES=$NODES"
        echo "DLOCK_TEST_CLUSTER_NODE_TIMEOUT_MS=$NODE_TIMEOUT_MS"
        for n in $(seq 1 $NODES); do
            echo "DLOCK_TEST_CLUSTER_PORT_$n=$(cat "$DIR/node$n.port")"
            echo "DLOCK_TEST_CLUSTER_PID_FILE_$n=$DIR/node$n.pid"
            echo "DLOCK_TEST_CLUSTER_CONF_$n=$DIR/node$n.conf"
        done
    } >"$DIR/env.tmp"
    mv "$DIR/env.tmp" "$DIR/env"
    echo "cluster-env.sh: cluster up; environment in $DIR/env"
    ;;
stop)
    if [ -d "$DIR" ]; then
        DIR=$(cd "$DIR" && pwd)
        stop_dir
        rm -f "$DIR/env"
    fi
    ;;
*)
    die "usage: cluster-env.sh start|stop DIR"
    ;;
esac
