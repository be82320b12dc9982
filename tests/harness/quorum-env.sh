#!/usr/bin/env bash
# quorum-env.sh: the five independent redis-servers of the Redlock tests (tests/test_quorum.c).
#
#   quorum-env.sh start DIR       start servers 1..5 in DIR, write DIR/env, wait for PING
#   quorum-env.sh stop DIR        stop every server started in DIR (by PID file only); idempotent
#   quorum-env.sh kill DIR I      SIGKILL server I (1-based)
#   quorum-env.sh restart DIR I   start server I again with its config and data; waits for PING
#   quorum-env.sh pause DIR I     SIGSTOP server I (it accepts connections, answers nothing)
#   quorum-env.sh resume DIR I    SIGCONT server I
#
# Each server has its own directory with appendonly yes and appendfsync always, so a server
# killed and restarted comes back with every write it acknowledged (locks and fencing counters),
# as Redlock requires (DLOCK_QUORUM_FSYNC=everysec relaxes that, for the benchmark only). Ports
# are free ones picked at random, retried on a clash.
# DIR/env: DLOCK_QUORUM_N, DLOCK_QUORUM_URLS (comma-separated), and for each I:
# DLOCK_Q<I>_PORT, DLOCK_Q<I>_URL, DLOCK_Q<I>_PID_FILE.
set -euo pipefail

N=5

die() {
    echo "quorum-env.sh: $*" >&2
    exit 1
}

# shellcheck source=redis-lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/redis-lib.sh"

server_pid() {
    local pid
    pid=$(cat "$DIR/q$1/redis.pid" 2>/dev/null || true)
    case $pid in '' | *[!0-9]*) return 1 ;; esac
    dl_pid_is_redis "$pid" || return 1
    echo "$pid"
}

write_conf() {
    local i=$1 port=$2 d="$DIR/q$1"
    mkdir -p "$d"
    cat >"$d/redis.conf" <<EOF
bind 127.0.0.1
port $port
daemonize yes
pidfile $d/redis.pid
logfile $d/redis.log
dir $d
save ""
appendonly yes
appendfsync ${DLOCK_QUORUM_FSYNC:-always}
protected-mode no
EOF
    echo "$port" >"$d/port"
}

# launch I: starts server I from its config; 0 once it answers PING (else the caller abandons it).
launch() {
    local d="$DIR/q$1" pid
    rm -f "$d/redis.pid"
    redis-server "$d/redis.conf" </dev/null >/dev/null 2>&1 || true
    dl_redis_wait "$d/redis.pid" "$d/redis.log" "$(cat "$d/port")"
}

start_server() {
    local i=$1
    for _ in 1 2 3 4 5 6 7 8 9 10; do
        rm -rf "$DIR/q$i"
        write_conf "$i" "$(dl_free_port)"
        if launch "$i"; then
            return 0
        fi
        dl_redis_abandon "$DIR/q$i/redis.pid" "$DIR/q$i/redis.log" "quorum-env.sh: server $i"
    done
    die "could not start server $i; see $DIR/q$i/redis.log"
}

stop_dir() {
    local i pidfiles=()
    for i in $(seq 1 $N); do
        pidfiles+=("$DIR/q$i/redis.pid")
    done
    dl_redis_stop "${pidfiles[@]}"
}

check_index() {
    case $1 in '' | *[!0-9]*) die "bad server number '$1'" ;; esac
    if [ "$1" -lt 1 ] || [ "$1" -gt $N ]; then
        die "server number $1 is not in 1..$N"
    fi
}

[ $# -ge 2 ] || die "usage: quorum-env.sh start|stop|kill|restart|pause|resume DIR [I]"
cmd=$1
DIR=$2

case $cmd in
start)
    command -v redis-server >/dev/null || die "redis-server not found (apt-get install redis-server)"
    command -v redis-cli >/dev/null || die "redis-cli not found (apt-get install redis-tools)"
    mkdir -p "$DIR"
    DIR=$(cd "$DIR" && pwd)
    stop_dir # a previous run may have been interrupted before its cleanup
    rm -f "$DIR/env"
    for i in $(seq 1 $N); do
        start_server "$i"
    done
    urls=""
    {
        echo "DLOCK_QUORUM_N=$N"
        for i in $(seq 1 $N); do
            port=$(cat "$DIR/q$i/port")
            urls="$urls${urls:+,}redis://127.0.0.1:$port"
            echo "DLOCK_Q${i}_PORT=$port"
            echo "DLOCK_Q${i}_URL=redis://127.0.0.1:$port"
            echo "DLOCK_Q${i}_PID_FILE=$DIR/q$i/redis.pid"
        done
        echo "DLOCK_QUORUM_URLS=$urls"
        echo "DLOCK_QUORUM_DIR=$DIR"
    } >"$DIR/env.tmp"
    mv "$DIR/env.tmp" "$DIR/env"
    echo "quorum-env.sh: $N servers up; environment in $DIR/env"
    ;;
stop)
    if [ -d "$DIR" ]; then
        DIR=$(cd "$DIR" && pwd)
        stop_dir
        rm -f "$DIR/env"
    fi
    ;;
kill | pause | resume)
    [ $# -eq 3 ] || die "usage: quorum-env.sh $cmd DIR I"
    check_index "$3"
    pid=$(server_pid "$3") || die "server $3 is not running"
    case $cmd in
    kill)
        kill -KILL "$pid"
        for _ in $(seq 1 100); do
            dl_pid_is_redis "$pid" || exit 0
            sleep 0.01
        done
        die "server $3 (pid $pid) survived SIGKILL"
        ;;
    pause) kill -STOP "$pid" ;;
    resume) kill -CONT "$pid" ;;
    esac
    ;;
restart)
    [ $# -eq 3 ] || die "usage: quorum-env.sh restart DIR I"
    check_index "$3"
    if pid=$(server_pid "$3"); then
        die "server $3 is still running (pid $pid)"
    fi
    if ! launch "$3"; then
        dl_redis_abandon "$DIR/q$3/redis.pid" "$DIR/q$3/redis.log" "quorum-env.sh: server $3" 2>/dev/null
        die "server $3 did not restart; see $DIR/q$3/redis.log"
    fi
    ;;
*)
    die "usage: quorum-env.sh start|stop|kill|restart|pause|resume DIR [I]"
    ;;
esac
