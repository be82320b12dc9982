#!/usr/bin/env bash
# redis-env.sh: start and stop the real redis-server processes the dlock tests run against.
#
#   redis-env.sh start DIR   make DIR, start the servers in it, write DIR/env, wait for PING
#   redis-env.sh stop DIR    stop every server started in DIR (by PID file only); idempotent
#
# Servers (all on 127.0.0.1, on free ports picked at random and retried on a clash):
#   plain   TCP, no password, also listening on a unix socket
#   tls     TLS port with a self-signed CA made here (SAN IP:127.0.0.1, DNS:localhost); it also
#           has a plain port, used only by the tests' raw hiredis checks (hiredis 0.14 has no TLS)
#   mtls    TLS port that requires a client certificate signed by the same CA
#   acl     requirepass for the default user, plus an ACL user with its own password
#   victim  plain TCP, for destructive tests (SIGKILL, SIGSTOP, restart) so nothing else breaks
#
# DIR/env holds shell-sourceable KEY=VALUE lines (no quoting needed: values have no spaces
# unless DIR does). Only Debian 12 packages are used: bash, coreutils, redis-server, redis-tools,
# openssl.
set -euo pipefail
# shellcheck source=redis-lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/redis-lib.sh"

SERVERS=(plain tls mtls acl victim)
ACL_USER=dlocktest
ACL_PASS=s3cret
DEFAULT_PASS=defpass

die() {
    echo "redis-env.sh: $*" >&2
    exit 1
}

# write_conf NAME PORT [TLSPORT]: the config file of one server. Every server is ephemeral: no
# RDB or AOF files, so a restart comes back empty, as a crashed cache would.
write_conf() {
    local name=$1 port=$2 tlsport=${3:-}
    local conf="$DIR/$name.conf"
    {
        echo "bind 127.0.0.1"
        echo "port $port"
        echo "daemonize yes"
        echo "pidfile $DIR/$name.pid"
        echo "logfile $DIR/$name.log"
        echo "dir $DIR"
        echo "save \"\""
        echo "appendonly no"
        echo "protected-mode no"
        echo "databases 16"
        case $name in
        plain)
            echo "unixsocket $SOCK"
            echo "unixsocketperm 700"
            ;;
        tls | mtls)
            echo "tls-port $tlsport"
            echo "tls-cert-file $DIR/server.crt"
            echo "tls-key-file $DIR/server.key"
            echo "tls-ca-cert-file $DIR/ca.crt"
            if [ "$name" = tls ]; then
                echo "tls-auth-clients no"
            else
                echo "tls-auth-clients yes"
            fi
            ;;
        acl)
            echo "requirepass $DEFAULT_PASS"
            echo "user $ACL_USER on >$ACL_PASS ~* &* +@all"
            ;;
        esac
    } >"$conf"
}

# ping_auth NAME: the redis-cli options that PING server NAME needs.
ping_auth() {
    if [ "$1" = acl ]; then
        echo "--no-auth-warning -a $DEFAULT_PASS"
    fi
}

ping_tls() {
    local port=$1 extra=()
    if [ "$2" = mtls ]; then
        extra=(--cert "$DIR/client.crt" --key "$DIR/client.key")
    fi
    [ "$(timeout 2 redis-cli -h 127.0.0.1 -p "$port" --tls --cacert "$DIR/ca.crt" "${extra[@]}" \
        ping 2>/dev/null)" = PONG ]
}

# start_server NAME: start one server, retrying with new ports while the bind fails.
start_server() {
    local name=$1 port tlsport="" pid
    for _ in 1 2 3 4 5 6 7 8 9 10; do
        port=$(dl_free_port)
        if [ "$name" = tls ] || [ "$name" = mtls ]; then
            tlsport=$(dl_free_port)
            [ "$tlsport" != "$port" ] || continue
        fi
        write_conf "$name" "$port" "$tlsport"
        rm -f "$DIR/$name.pid"
        : >"$DIR/$name.log"
        # daemonize yes: the parent returns at once and the server's own fds are closed, so it
        # does not hold CTest's output pipe open.
        redis-server "$DIR/$name.conf" </dev/null >/dev/null 2>&1 || true
        echo "$port" >"$DIR/$name.port"
        [ -z "$tlsport" ] || echo "$tlsport" >"$DIR/$name.tlsport"
        # shellcheck disable=SC2046 # ping_auth's words are options
        if dl_redis_wait "$DIR/$name.pid" "$DIR/$name.log" "$port" $(ping_auth "$name"); then
            for _ in $(seq 1 100); do
                if [ -z "$tlsport" ] || ping_tls "$tlsport" "$name"; then
                    return 0
                fi
                sleep 0.05
            done
        fi
        # Not up: stop whatever is left of this try (by its PID file) and pick new ports.
        dl_redis_abandon "$DIR/$name.pid" "$DIR/$name.log" \
            "redis-env.sh: $name on port $port${tlsport:+/$tlsport}"
    done
    die "could not start the $name server; see $DIR/$name.log"
}

stop_dir() {
    local name pidfiles=()
    # All at once (dl_redis_stop signals every server first, then waits): each takes a few
    # hundred ms to notice SIGTERM in its cron, and waiting one by one would add those up.
    for name in "${SERVERS[@]}"; do
        pidfiles+=("$DIR/$name.pid")
    done
    dl_redis_stop "${pidfiles[@]}"
    if [ -f "$DIR/sockdir" ]; then
        rm -rf "$(cat "$DIR/sockdir")"
        rm -f "$DIR/sockdir"
    fi
}

[ $# -eq 2 ] || die "usage: redis-env.sh start|stop DIR"
cmd=$1
DIR=$2

case $cmd in
start)
    command -v redis-server >/dev/null || die "redis-server not found (apt-get install redis-server)"
    command -v redis-cli >/dev/null || die "redis-cli not found (apt-get install redis-tools)"
    command -v openssl >/dev/null || die "openssl not found"
    mkdir -p "$DIR"
    DIR=$(cd "$DIR" && pwd)
    # A previous run may have been interrupted before its cleanup: stop its servers first.
    stop_dir
    rm -f "$DIR/env"
    # sun_path holds 108 bytes; a deep build directory would not fit, so fall back to /tmp.
    SOCK="$DIR/redis.sock"
    if [ ${#SOCK} -gt 100 ]; then
        sockdir=$(mktemp -d /tmp/dlock-test.XXXXXX)
        echo "$sockdir" >"$DIR/sockdir"
        SOCK="$sockdir/redis.sock"
    fi
    dl_make_certs "$DIR"
    for name in "${SERVERS[@]}"; do
        start_server "$name"
    done
    {
        echo "DLOCK_TEST_DIR=$DIR"
        echo "DLOCK_TEST_HOST=127.0.0.1"
        echo "DLOCK_TEST_PORT=$(cat "$DIR/plain.port")"
        echo "DLOCK_TEST_URL=redis://127.0.0.1:$(cat "$DIR/plain.port")"
        echo "DLOCK_TEST_UNIX=unix://$SOCK"
        echo "DLOCK_TEST_UNIX_PATH=$SOCK"
        echo "DLOCK_TEST_PID_FILE=$DIR/plain.pid"
        echo "DLOCK_TEST_TLS_PORT=$(cat "$DIR/tls.tlsport")"
        echo "DLOCK_TEST_TLS_URL=rediss://127.0.0.1:$(cat "$DIR/tls.tlsport")"
        echo "DLOCK_TEST_TLS_PLAIN_PORT=$(cat "$DIR/tls.port")"
        echo "DLOCK_TEST_TLS_PID_FILE=$DIR/tls.pid"
        echo "DLOCK_TEST_CA=$DIR/ca.crt"
        echo "DLOCK_TEST_OTHER_CA=$DIR/other-ca.crt"
        echo "DLOCK_TEST_CA_DIR=$DIR/cadir"
        echo "DLOCK_TEST_OTHER_CA_DIR=$DIR/other-cadir"
        echo "DLOCK_TEST_CLIENT_CERT=$DIR/client.crt"
        echo "DLOCK_TEST_CLIENT_KEY=$DIR/client.key"
        echo "DLOCK_TEST_MTLS_URL=rediss://127.0.0.1:$(cat "$DIR/mtls.tlsport")"
        echo "DLOCK_TEST_MTLS_PLAIN_PORT=$(cat "$DIR/mtls.port")"
        echo "DLOCK_TEST_MTLS_PID_FILE=$DIR/mtls.pid"
        echo "DLOCK_TEST_ACL_PORT=$(cat "$DIR/acl.port")"
        echo "DLOCK_TEST_ACL_URL=redis://127.0.0.1:$(cat "$DIR/acl.port")"
        echo "DLOCK_TEST_ACL_USER=$ACL_USER"
        echo "DLOCK_TEST_ACL_PASS=$ACL_PASS"
        echo "DLOCK_TEST_DEFAULT_PASS=$DEFAULT_PASS"
        echo "DLOCK_TEST_ACL_PID_FILE=$DIR/acl.pid"
        echo "DLOCK_TEST_VICTIM_PORT=$(cat "$DIR/victim.port")"
        echo "DLOCK_TEST_VICTIM_URL=redis://127.0.0.1:$(cat "$DIR/victim.port")"
        echo "DLOCK_TEST_VICTIM_CONF=$DIR/victim.conf"
        echo "DLOCK_TEST_VICTIM_PID_FILE=$DIR/victim.pid"
    } >"$DIR/env.tmp"
    mv "$DIR/env.tmp" "$DIR/env"
    echo "redis-env.sh: servers up; environment in $DIR/env"
    ;;
stop)
    if [ -d "$DIR" ]; then
        DIR=$(cd "$DIR" && pwd)
        stop_dir
        rm -f "$DIR/env"
    fi
    ;;
*)
    die "usage: redis-env.sh start|stop DIR"
    ;;
esac
