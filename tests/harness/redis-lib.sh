# shellcheck shell=bash
# redis-lib.sh: the redis-server lifecycle, in one place, for every shell script of dlock that
# needs a private server: the CTest fixtures (tests/harness/redis-env.sh, cluster-env.sh,
# sentinel-env.sh, quorum-env.sh), tests/cli, tests/fault, bench and demo.
# Source it from bash:
#
#   . tests/harness/redis-lib.sh
#   dl_redis_start "$DIR" main --requirepass "$PW"   # sets DL_REDIS_PORT and DL_REDIS_PID
#   dl_redis_stop "$DIR/main.pid"                     # by PID file, only a live redis-server
#
# Servers listen on 127.0.0.1 on a free port (picked at random and retried on a clash), keep
# no RDB or AOF files, write DIR/NAME.pid and DIR/NAME.log, and are stopped by PID only: never by
# name, so no other redis-server on the machine is touched. Needs bash, coreutils, redis-server
# and redis-cli (Debian: redis-server redis-tools).

# dl_port_in_use PORT: 0 if something accepts connections on 127.0.0.1:PORT. Only a first
# filter: whether redis-server can bind the port is what dl_redis_start checks (and retries).
dl_port_in_use() {
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

# dl_free_port: prints a port that nothing listens on now, below the kernel's ephemeral range
# (where a client's own end of some connection could already hold the number, which
# SO_REUSEADDR does not get around; tests/fault/run.sh's rule). Clashes are retried by the
# callers anyway.
dl_free_port() {
    local p lo
    lo=$(cut -f1 /proc/sys/net/ipv4/ip_local_port_range 2>/dev/null || echo 32768)
    [ "$lo" -gt 12000 ] || lo=61000
    while :; do
        p=$((10000 + (RANDOM * 32768 + RANDOM) % (lo - 10000)))
        if ! dl_port_in_use "$p"; then
            echo "$p"
            return
        fi
    done
}

# dl_pid_is_redis PID: 0 if PID is a live redis-server. A stale PID file must never make us
# signal a process that reused the number. A killed server stays a zombie until whoever
# inherited it reaps it (in a container that can take a while): that is not alive.
dl_pid_is_redis() {
    local stat
    [ -n "$1" ] && kill -0 "$1" 2>/dev/null &&
        [ "$(cat "/proc/$1/comm" 2>/dev/null)" = redis-server ] &&
        stat=$(cat "/proc/$1/stat" 2>/dev/null) && stat=${stat##*) } && [ "${stat%% *}" != Z ]
}

# dl_redis_abandon PIDFILE LOGFILE WHAT: after a try to start a server failed, kills what is
# left of it (by PIDFILE, only a live redis-server), says WHAT did not start, and shows its log's
# last lines, so that the caller can retry on other ports.
dl_redis_abandon() {
    local pid
    pid=$(cat "$1" 2>/dev/null || true)
    if dl_pid_is_redis "$pid"; then
        kill -9 "$pid" 2>/dev/null || true
    fi
    echo "$3 did not start, retrying" >&2
    tail -n 5 "$2" >&2 || true
}

# dl_redis_ping PORT [redis-cli options...]: 0 once the server on PORT answers PONG.
dl_redis_ping() {
    local port=$1
    shift
    [ "$(timeout 2 redis-cli -h 127.0.0.1 -p "$port" "$@" ping 2>/dev/null)" = PONG ]
}

# dl_redis_wait PIDFILE LOGFILE PORT [redis-cli options...]: waits up to 5 s for the server of
# PIDFILE to be alive and to answer PONG on PORT. Returns 1 at once if its log says the port was
# taken.
dl_redis_wait() {
    local pidfile=$1 log=$2 port=$3 pid
    shift 3
    for _ in $(seq 1 100); do
        pid=$(cat "$pidfile" 2>/dev/null || true)
        if dl_pid_is_redis "$pid" && dl_redis_ping "$port" "$@"; then
            return 0
        fi
        if grep -q "Address already in use\|Could not create server\|Failed listening" \
            "$log" 2>/dev/null; then
            return 1
        fi
        sleep 0.05
    done
    return 1
}

# dl_redis_stop PIDFILE...: stops the servers of these PID files: SIGCONT (a test may have left
# one stopped; SIGTERM waits for it), SIGTERM to all, then waits up to 3 s for each and sends
# SIGKILL to what is left. Removes the PID files. Idempotent.
dl_redis_stop() {
    local f pid pids=()
    for f in "$@"; do
        pid=$(cat "$f" 2>/dev/null || true)
        rm -f "$f"
        case $pid in '' | *[!0-9]*) continue ;; esac
        if dl_pid_is_redis "$pid"; then
            kill -CONT "$pid" 2>/dev/null || true
            kill -TERM "$pid" 2>/dev/null || true
            pids+=("$pid")
        fi
    done
    for pid in "${pids[@]}"; do
        for _ in $(seq 1 60); do
            dl_pid_is_redis "$pid" || break
            sleep 0.05
        done
        if dl_pid_is_redis "$pid"; then
            kill -KILL "$pid" 2>/dev/null || true
        fi
    done
}

# dl_redis_start DIR NAME [redis-server options...]: starts a daemonized redis-server on a free
# port, retrying on a clash, and waits for PONG. Sets DL_REDIS_PORT and DL_REDIS_PID. Options
# come after the defaults, so they may override them. Set DL_REDIS_AUTH to the default user's
# password if the options set one (for the PING), and the array DL_REDIS_PREFIX to run the
# server under a wrapper (e.g. DL_REDIS_PREFIX=(taskset -c 0)). Returns 1 after 5 failed tries.
dl_redis_start() {
    local dir=$1 name=$2 auth=()
    shift 2
    if [ -n "${DL_REDIS_AUTH:-}" ]; then
        auth=(--no-auth-warning -a "$DL_REDIS_AUTH")
    fi
    for _ in 1 2 3 4 5; do
        DL_REDIS_PORT=$(dl_free_port)
        rm -f "$dir/$name.pid"
        : >"$dir/$name.log"
        # daemonize yes: the parent returns at once and the server's own fds are closed, so it
        # does not hold a caller's output pipe (CTest's) open.
        "${DL_REDIS_PREFIX[@]}" redis-server --port "$DL_REDIS_PORT" --bind 127.0.0.1 --save '' \
            --appendonly no --daemonize yes --pidfile "$dir/$name.pid" \
            --logfile "$dir/$name.log" --dir "$dir" "$@" </dev/null >/dev/null 2>&1 || true
        if dl_redis_wait "$dir/$name.pid" "$dir/$name.log" "$DL_REDIS_PORT" "${auth[@]}"; then
            # shellcheck disable=SC2034 # for the caller
            DL_REDIS_PID=$(cat "$dir/$name.pid")
            return 0
        fi
        dl_redis_stop "$dir/$name.pid"
    done
    echo "redis-lib.sh: could not start redis-server $name; see $dir/$name.log" >&2
    return 1
}

# dl_make_certs DIR: a throwaway CA (DIR/ca.crt), a server certificate for 127.0.0.1 and localhost
# signed by it (DIR/server.crt, .key; also good as a client certificate, because cluster nodes
# present it to each other on the TLS cluster bus, which always asks for one), a client certificate (DIR/client.crt, .key), an unrelated
# CA (DIR/other-ca.crt) that must fail verification, and hashed CA directories of each
# (DIR/cadir, DIR/other-cadir). Needs openssl.
dl_make_certs() {
    local d=$1
    local ext="$d/server.ext"
    openssl ecparam -name prime256v1 -genkey -noout -out "$d/ca.key" 2>/dev/null
    openssl req -x509 -new -key "$d/ca.key" -sha256 -days 2 -subj "/CN=dlock test CA" \
        -out "$d/ca.crt" 2>/dev/null
    openssl ecparam -name prime256v1 -genkey -noout -out "$d/server.key" 2>/dev/null
    openssl req -new -key "$d/server.key" -subj "/CN=localhost" -out "$d/server.csr" 2>/dev/null
    printf '%s\n' "subjectAltName=IP:127.0.0.1,DNS:localhost" \
        "basicConstraints=CA:FALSE" "keyUsage=digitalSignature,keyEncipherment" \
        "extendedKeyUsage=serverAuth,clientAuth" >"$ext"
    openssl x509 -req -in "$d/server.csr" -CA "$d/ca.crt" -CAkey "$d/ca.key" -CAcreateserial \
        -days 2 -sha256 -extfile "$ext" -out "$d/server.crt" 2>/dev/null
    openssl ecparam -name prime256v1 -genkey -noout -out "$d/client.key" 2>/dev/null
    openssl req -new -key "$d/client.key" -subj "/CN=dlock test client" -out "$d/client.csr" \
        2>/dev/null
    printf '%s\n' "basicConstraints=CA:FALSE" "extendedKeyUsage=clientAuth" >"$d/client.ext"
    openssl x509 -req -in "$d/client.csr" -CA "$d/ca.crt" -CAkey "$d/ca.key" -CAcreateserial \
        -days 2 -sha256 -extfile "$d/client.ext" -out "$d/client.crt" 2>/dev/null
    # A second, unrelated CA: verifying the server against it must fail.
    openssl ecparam -name prime256v1 -genkey -noout -out "$d/other-ca.key" 2>/dev/null
    openssl req -x509 -new -key "$d/other-ca.key" -sha256 -days 2 -subj "/CN=other CA" \
        -out "$d/other-ca.crt" 2>/dev/null
    # Hashed CA directories, for tls_ca_dir.
    mkdir -p "$d/cadir" "$d/other-cadir"
    cp "$d/ca.crt" "$d/cadir/"
    cp "$d/other-ca.crt" "$d/other-cadir/"
    openssl rehash "$d/cadir" "$d/other-cadir" 2>/dev/null
    # redis-server reads the keys as the same user; keep them private anyway.
    chmod 600 "$d"/*.key
}
