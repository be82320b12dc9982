#!/usr/bin/env bash
# cluster-env.sh: start and stop a Redis Cluster of 3 masters and 3 replicas for the dlock tests.
#
#   cluster-env.sh start DIR   make DIR, start 6 cluster-enabled servers, create the cluster,
#                              wait until every node says cluster_state:ok, write DIR/env
#   cluster-env.sh stop DIR    stop every server started in DIR (by PID file only); idempotent
#
# Faults, for tests/fault/run.sh (N is a node number, 1..6):
#   cluster-env.sh kill DIR N          SIGKILL node N (by its PID file, only a live redis-server)
#   cluster-env.sh restart DIR N       start node N again from DIR/nodeN.conf: same port, same
#                                      node id; waits for PONG
#   cluster-env.sh pause|resume DIR N  SIGSTOP / SIGCONT node N
#   cluster-env.sh cut DIR N           CLIENT KILL TYPE replica on master N: its replicas' links
#                                      drop, and what N acknowledges next reaches no replica until
#                                      they reconnect (within a second, unless paused)
#   cluster-env.sh failover DIR N [force|takeover]
#                                      CLUSTER FAILOVER on replica N (plain: the replica catches
#                                      up with its master first, then takes over), then waits as
#                                      wait-master does
#   cluster-env.sh wait-master DIR N   waits until node N is a master and every live node says
#                                      cluster_state:ok and sees N as a master that has not failed
#   cluster-env.sh wait DIR            waits until the cluster is whole, as start does: all six
#                                      up, cluster_state:ok everywhere, every replica linked
#   cluster-env.sh shards DIR          one line per shard, in slot order, as the live nodes see
#                                      it: FIRST_SLOT MASTER_N [REPLICA_N...]
#
# Nodes listen on 127.0.0.1 at free ports P for plain TCP, P+1 for TLS (certificates from a CA
# made here) and P+10000 for the cluster bus, picked at random and retried on a clash. The bus
# and replication run over TLS (tls-cluster, tls-replication), so the cluster tells TLS clients
# its TLS ports (CLUSTER SLOTS, MOVED, ASK) and plain clients its plain ones: the same cluster
# serves the redis:// and the rediss:// tests. Each node has DIR/nodeN.conf, so a test may kill
# one (kill -9) and start it
# again with `redis-server DIR/nodeN.conf`: it keeps its node id (DIR/nodeN/nodes.conf) and
# rejoins, as a replica if its slots were failed over meanwhile. cluster-node-timeout is 2 s, so a
# killed master's replica takes over in about 3 s, and a node that rejoins as a replica is synced
# at once (repl-diskless-sync-delay 0, not Redis's 5 s).
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
        echo "repl-diskless-sync-delay 0"
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


# node_of_port PORT: the number of the node listening on PORT, or nothing.
node_of_port() {
    local n
    for n in $(seq 1 $NODES); do
        if [ "$(cat "$DIR/node$n.port" 2>/dev/null)" = "$1" ]; then
            echo "$n"
            return
        fi
    done
}

node_port() {
    cat "$DIR/node$1.port" 2>/dev/null || die "node$1 has no port file in $DIR"
}

check_node() {
    case $1 in '' | *[!0-9]*) die "bad node number '$1'" ;; esac
    if [ "$1" -lt 1 ] || [ "$1" -gt $NODES ]; then
        die "node number $1 is not in 1..$NODES"
    fi
}

# live_ports: the ports of the nodes that answer PING.
live_ports() {
    local n port
    for n in $(seq 1 $NODES); do
        port=$(cat "$DIR/node$n.port" 2>/dev/null) || continue
        [ "$(cli "$port" ping)" = PONG ] && echo "$port"
    done
}

# True once node $1 is a master and every live node says cluster_state:ok and lists it as a
# master that has not failed.
master_agreed() {
    local port p line
    port=$(node_port "$1")
    [ "$(cli "$port" role | head -n 1)" = master ] || return 1
    for p in $(live_ports); do
        cli "$p" cluster info | grep -q "cluster_state:ok" || return 1
        line=$(cli "$p" cluster nodes | grep " 127.0.0.1:$port@") || return 1
        case $line in *master*) ;; *) return 1 ;; esac
        case $line in *fail*) return 1 ;; esac
    done
}

pid_gone() {
    ! dl_pid_is_redis "$1"
}

# wait_until SECS CMD...: runs CMD every 0.1 s until it succeeds; 1 if SECS pass first.
wait_until() {
    local secs=$1 i
    shift
    for ((i = 0; i < secs * 10; i++)); do
        "$@" && return 0
        sleep 0.1
    done
    return 1
}

# shards: FIRST_SLOT MASTER_N [REPLICA_N...] per shard, from the first live node's CLUSTER NODES.
shards() {
    local p nodes
    p=$(live_ports)
    p=${p%%$'\n'*}
    [ -n "$p" ] || die "no node of $DIR is up"
    nodes=$(cli "$p" cluster nodes) || die "CLUSTER NODES failed on port $p"
    # Fields: id addr flags master-id ping pong epoch link slot...; addr is ip:port@bus.
    awk '{split($2, a, "[:@]"); port[$1] = a[2]; flags[$1] = $3; master[$1] = $4;
          first[$1] = ""; if (NF >= 9) { split($9, s, "-"); first[$1] = s[1] } }
         END {for (id in port) if (flags[id] ~ /master/ && first[id] != "") {
                  line = first[id] " " port[id];
                  for (r in port) if (master[r] == id && flags[r] !~ /fail/) line = line " " port[r];
                  print line } }' <<<"$nodes" | sort -n |
        while read -r first ports; do
            line=$first
            for p in $ports; do
                line="$line $(node_of_port "$p")"
            done
            echo "$line"
        done
}

usage="usage: cluster-env.sh start|stop|wait|shards DIR, or kill|restart|pause|resume|cut|wait-master DIR N, or failover DIR N [force|takeover]"
[ $# -ge 2 ] || die "$usage"
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
kill)
    [ $# -eq 3 ] || die "$usage"
    check_node "$3"
    pid=$(cat "$DIR/node$3.pid" 2>/dev/null || true)
    dl_pid_is_redis "$pid" || die "node$3 is not running"
    kill -KILL "$pid"
    wait_until 5 pid_gone "$pid" || die "node$3 (pid $pid) survived SIGKILL"
    ;;
restart)
    [ $# -eq 3 ] || die "$usage"
    check_node "$3"
    pid=$(cat "$DIR/node$3.pid" 2>/dev/null || true)
    ! dl_pid_is_redis "$pid" || die "node$3 is still running (pid $pid)"
    rm -f "$DIR/node$3.pid"
    redis-server "$DIR/node$3.conf" </dev/null >/dev/null 2>&1 || true
    dl_redis_wait "$DIR/node$3.pid" "$DIR/node$3.log" "$(node_port "$3")" ||
        die "node$3 did not restart; see $DIR/node$3.log"
    ;;
pause | resume)
    [ $# -eq 3 ] || die "$usage"
    check_node "$3"
    pid=$(cat "$DIR/node$3.pid" 2>/dev/null || true)
    dl_pid_is_redis "$pid" || die "node$3 is not running"
    if [ "$cmd" = pause ]; then
        kill -STOP "$pid"
    else
        kill -CONT "$pid"
    fi
    ;;
cut)
    [ $# -eq 3 ] || die "$usage"
    check_node "$3"
    reply=$(cli "$(node_port "$3")" client kill type replica)
    case $reply in '' | *[!0-9]*) die "CLIENT KILL TYPE replica on node$3: ${reply:-no reply}" ;; esac
    ;;
failover)
    if [ $# -lt 3 ] || [ $# -gt 4 ]; then
        die "$usage"
    fi
    check_node "$3"
    reply=$(cli "$(node_port "$3")" cluster failover ${4:+"$4"})
    [ "$reply" = OK ] || die "CLUSTER FAILOVER ${4:-} on node$3: ${reply:-no reply}"
    wait_until 30 master_agreed "$3" || die "node$3 did not become an agreed master in 30 s"
    ;;
wait-master)
    [ $# -eq 3 ] || die "$usage"
    check_node "$3"
    wait_until 30 master_agreed "$3" || die "node$3 did not become an agreed master in 30 s"
    ;;
wait)
    wait_until 30 cluster_ready || die "the cluster is not whole after 30 s; see $DIR/node*.log"
    ;;
shards)
    shards
    ;;
*)
    die "$usage"
    ;;
esac
