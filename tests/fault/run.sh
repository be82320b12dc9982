#!/usr/bin/env bash
# run.sh: dlock's fault-injection suite (issue 7). Runs the mutual-exclusion check clean and
# under each fault, the load test (plain, ASan, valgrind) and the fuzzers, then prints figures.
#
#   tests/fault/run.sh [--smoke] BUILD_DIR [SCENARIO...]
#
# BUILD_DIR is a CMake build of dlock that includes tests/fault (its programs are found in
# BUILD_DIR/tests/fault, or in $FAULT_BIN). SCENARIO names (default: all of them, in this order):
#
#   clean                 no faults, fencing on: no error, no overlap, no lost update
#   clean-unfenced        the same with plain SET NX PX (the @upstash/lock protocol)
#   redis-kill            SIGKILL redis-server and restart it (AOF, appendfsync always), 3 times
#   redis-kill-nopersist  the same without persistence: Redis forgets the lock and the fencing
#                         counter. Overlaps are allowed across the restart; fencing must still
#                         keep the storage consistent
#   client-kill           CLIENT KILL TYPE normal, every 150 ms, for the whole run
#   redis-stop            SIGSTOP redis-server for 2.5 s (> command + connect deadline), 4 times
#   proxy                 plain SET NX through fault_proxy: lost SET replies, cuts, stalls, half
#                         replies, cut verification GETs, dropped connections
#   proxy-fenced          the same with fencing (the fenced acquire is a script)
#   holder-pause          two holders SIGSTOPped for 3 s with a 2 s lease, fencing on
#   holder-pause-unfenced one holder paused without fencing: the checker must see the lost update
#   load                  fault_load 100 threads x 1000 cycles (plain build)
#   load-asan             the same under ASan, if $FAULT_ASAN_BUILD names an ASan build
#   load-valgrind         20 threads x 50 cycles under valgrind
#   fuzz                  fuzz/run.sh, $FAULT_FUZZ_SECONDS (default 30) per target
#
# Environment: FAULT_WORKERS (8), FAULT_CYCLES (200), FAULT_WORK (scratch dir, default a temp
# dir removed on success), FAULT_ASAN_BUILD, FAULT_FUZZ_SECONDS, FAULT_BIN.
# --smoke: a quick clean run (4 workers x 25 holds), for ctest.
#
# Every redis-server and proxy is started here, as a child of this script, and stopped by PID.
set -uo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
smoke=0
if [ "${1:-}" = --smoke ]; then
    smoke=1
    shift
fi
[ $# -ge 1 ] || {
    echo "usage: run.sh [--smoke] BUILD_DIR [SCENARIO...]" >&2
    exit 2
}
build=$(cd "$1" && pwd)
shift
bin=${FAULT_BIN:-$build/tests/fault}
for p in fault_worker fault_check fault_proxy fault_load; do
    [ -x "$bin/$p" ] || {
        echo "run.sh: $bin/$p not built (add_subdirectory(tests/fault) and build first)" >&2
        exit 2
    }
done
command -v redis-server >/dev/null && command -v redis-cli >/dev/null || {
    echo "run.sh: redis-server and redis-cli are needed" >&2
    exit 2
}

WORKERS=${FAULT_WORKERS:-8}
CYCLES=${FAULT_CYCLES:-200}
if [ $smoke = 1 ]; then
    WORKERS=4
    CYCLES=25
fi
LEASE=2000
WAIT=10000
CONNECT_MS=1000
COMMAND_MS=500
# A failed call must return within its deadlines. Each round trip may take connect_timeout +
# command_timeout (a fresh connection, then the command). A single-attempt acquire makes at most
# 3 (EVALSHA, EVAL after NOSCRIPT, then the GET that checks a lost reply); release/extend at most
# 2. A blocking acquire may fail at any point of its WAIT and then makes at most 4 (its try, and
# the try that leaves the wait queue, each EVALSHA + EVAL). 1 s of slack for a loaded machine.
BOUND=$((3 * (CONNECT_MS + COMMAND_MS) + 1000))
ACQ_BOUND=$((4 * (CONNECT_MS + COMMAND_MS) + 1000))

work=${FAULT_WORK:-$(mktemp -d /tmp/dlock-fault.XXXXXX)}
mkdir -p "$work"
summary=$work/summary
: >"$summary"
failed=()

# On exit, stop what is still running of ours: `jobs -p` lists only this shell's children that
# have not been reaped, so no PID here can have been reused by someone else's process.
cleanup() {
    local pid
    for pid in $(jobs -p); do
        kill -CONT "$pid" 2>/dev/null
        kill -KILL "$pid" 2>/dev/null
    done
}
trap cleanup EXIT

now_us() { "$bin/fault_worker" now; }

port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# A port below the kernel's ephemeral range (where a client's own end of some connection could
# already hold the number, which SO_REUSEADDR does not get around), not listened on now.
free_port() {
    local p lo
    lo=$(cut -f1 /proc/sys/net/ipv4/ip_local_port_range 2>/dev/null || echo 32768)
    [ "$lo" -gt 12000 ] || lo=61000
    while :; do
        p=$((10000 + (RANDOM * 32768 + RANDOM) % (lo - 10000)))
        if port_free "$p"; then
            echo "$p"
            return
        fi
    done
}

# start_redis DIR PORT PERSIST: a redis-server child on PORT; sets REDIS_PID.
start_redis() {
    local dir=$1 port=$2 persist=$3 i try
    local aof=(--appendonly no)
    if [ "$persist" = 1 ]; then
        # appendfsync always: a write is on disk before its reply, so SIGKILL loses nothing that
        # a client was told about. SET ... PX is logged with an absolute expiry (PXAT).
        aof=(--appendonly yes --appendfsync always --appenddirname aof)
    fi
    for try in 1 2 3 4 5 6 7 8 9 10; do
        redis-server --port "$port" --bind 127.0.0.1 --save "" "${aof[@]}" --dir "$dir" \
            --protected-mode no --loglevel warning --logfile "$dir/redis.log" \
            --daemonize no </dev/null >/dev/null 2>&1 &
        REDIS_PID=$!
        for i in $(seq 1 200); do
            if [ "$(redis-cli -p "$port" ping 2>/dev/null)" = PONG ]; then
                return 0
            fi
            kill -0 "$REDIS_PID" 2>/dev/null || break
            sleep 0.02
        done
        kill -KILL "$REDIS_PID" 2>/dev/null
        wait "$REDIS_PID" 2>/dev/null
        sleep 0.2 # the port may still be held by the previous incarnation
    done
    echo "run.sh: redis-server would not start on $port; see $dir/redis.log" >&2
    return 1
}

stop_pid() {
    kill -CONT "$1" 2>/dev/null
    kill -TERM "$1" 2>/dev/null
    wait "$1" 2>/dev/null
}

workers_alive() {
    local pid
    for pid in "${WPIDS[@]}"; do
        kill -0 "$pid" 2>/dev/null && return 0
    done
    return 1
}

# sleep_while_running MS: sleeps, but returns 1 at once when the workers have finished.
sleep_while_running() {
    local i
    for ((i = 0; i < $1; i += 50)); do
        workers_alive || return 1
        sleep 0.05
    done
    workers_alive
}

FAULTS=0
record_faults() { # NAME COUNT WHAT
    FAULTS=$2
    echo "FAULTS name=$1 n=$2 what=$3" >>"$summary"
    echo "  faults injected: $2 ($3)"
}

# ---- injectors: run while the workers run; set FAULTS ----

inject_none() {
    while workers_alive; do sleep 0.1; done
    record_faults "$NAME" 0 none
}

# Kills Redis while a long hold is in progress (fault_worker -L shows STATE.longcs), restarts it
# with the same persistence at once, and records the time of each data loss if not persistent.
inject_redis_kill() {
    local n=0 i
    while [ $n -lt "$KILLS" ] && workers_alive; do
        for ((i = 0; i < 500; i++)); do
            [ -e "$DIR/state.longcs" ] && break
            workers_alive || break
            sleep 0.01
        done
        workers_alive || break
        if [ "$PERSIST" = 0 ]; then
            now_us >>"$DIR/losses"
        fi
        kill -KILL "$REDIS_PID"
        wait "$REDIS_PID" 2>/dev/null
        n=$((n + 1))
        start_redis "$DIR" "$PORT" "$PERSIST" || return 1
        sleep 1.2 # past the long hold, so the next kill waits for the next one
    done
    while workers_alive; do sleep 0.1; done
    record_faults "$NAME" "$n" "redis-server SIGKILL mid-hold + restart"
}

inject_client_kill() {
    local n=0 k
    while sleep_while_running 150; do
        k=$(redis-cli -p "$PORT" client kill type normal 2>/dev/null)
        case $k in '' | *[!0-9]*) k=0 ;; esac
        n=$((n + k))
    done
    record_faults "$NAME" "$n" "client connections killed"
}

inject_redis_stop() {
    local n=0
    while [ $n -lt 4 ] && sleep_while_running 1500; do
        kill -STOP "$REDIS_PID"
        sleep 2.5
        kill -CONT "$REDIS_PID"
        n=$((n + 1))
    done
    while workers_alive; do sleep 0.1; done
    record_faults "$NAME" "$n" "redis-server SIGSTOP 2.5 s"
}

proxy_ctl() { # LINE -> prints the proxy's reply
    local reply=""
    exec 4<>"/dev/tcp/127.0.0.1/$CTL" || return 1
    printf '%s\n' "$1" >&4
    read -r -t 2 reply <&4
    exec 4>&-
    echo "$reply"
}

inject_proxy() {
    local acq=SET i=0 cmds
    if [ "$FENCING" = 1 ]; then
        acq=:fence
    fi
    cmds=("lose $acq 1" "lose EVALSHA 1" "cut $acq 1" "stall $acq 800 1" "half $acq 1"
        "cut EVALSHA 1" "stall EVALSHA 800 1" "half EVALSHA 1" "cut GET 1" "lose $acq 1"
        "dropall")
    while sleep_while_running 120; do
        proxy_ctl "${cmds[i % ${#cmds[@]}]}" >/dev/null
        i=$((i + 1))
    done
    proxy_ctl clear >/dev/null
    local stats total
    stats=$(proxy_ctl stats)
    total=$(echo "$stats" | tr ' ' '\n' | grep -E '^(lose|cut|stall|half|dropall)=' |
        cut -d= -f2 | awk '{s += $1} END {print s + 0}')
    record_faults "$NAME" "${total:-0}" "proxy: $stats"
}

inject_pause() {
    while workers_alive; do sleep 0.1; done
    record_faults "$NAME" "$PAUSES" "holder SIGSTOP 3 s past a 2 s lease"
}

# ---- one mutual-exclusion run ----

# scenario NAME FENCING PERSIST INJECTOR [fault_check options...]
scenario() {
    NAME=$1 FENCING=$2 PERSIST=$3
    local injector=$4
    shift 4
    DIR=$work/$NAME
    rm -rf "$DIR"
    mkdir -p "$DIR"
    echo "== $NAME ($WORKERS workers x $CYCLES holds, lease $LEASE ms, fencing $FENCING)"
    local t0=$SECONDS
    local try
    for try in 1 2 3; do
        PORT=$(free_port)
        start_redis "$DIR" "$PORT" "$PERSIST" && break
        [ $try = 3 ] && {
            failed+=("$NAME")
            return
        }
    done
    local url=redis://127.0.0.1:$PORT direct=redis://127.0.0.1:$PORT proxy_pid=""
    if [ "$injector" = inject_proxy ]; then
        local lp
        lp=$(free_port)
        CTL=$(free_port)
        "$bin/fault_proxy" -l "$lp" -u "$PORT" -c "$CTL" >"$DIR/proxy.out" 2>&1 &
        proxy_pid=$!
        for _ in $(seq 1 100); do
            port_free "$CTL" || break
            sleep 0.02
        done
        url=redis://127.0.0.1:$lp
    fi
    local common=(-u "$url" -d "$direct" -l "$LEASE" -C "$CONNECT_MS" -T "$COMMAND_MS" -D 200)
    [ "$FENCING" = 1 ] && common+=(-f)
    WPIDS=()
    local i extra
    for i in $(seq 0 $((WORKERS - 1))); do
        extra=()
        if [ -n "${PAUSE_AT[$i]:-}" ]; then
            extra=(-p "${PAUSE_AT[$i]}" -P 3000)
        fi
        if [ "$i" = 0 ] && [ -n "${LONG_EVERY:-}" ]; then
            extra+=(-L "$LONG_EVERY")
        fi
        "$bin/fault_worker" worker "${common[@]}" -i "dlock-fault:$NAME" -w "$i" -n "$CYCLES" \
            -W "$WAIT" -s "$DIR/state" -o "$DIR/w$i.log" "${extra[@]}" 2>"$DIR/w$i.err" &
        WPIDS+=($!)
    done
    "$bin/fault_worker" probe "${common[@]}" -o "$DIR/probe.log" -x "$DIR/stop" \
        2>"$DIR/probe.err" &
    local probe=$!

    "$injector"

    for i in "${WPIDS[@]}"; do
        wait "$i" 2>/dev/null
    done
    # The checker requires the probe's last calls to succeed: give it half a second (about 20
    # calls) after the injector has cleared its faults, so that a fault armed just before the
    # end cannot be the one its last calls meet.
    sleep 0.5
    touch "$DIR/stop"
    wait "$probe" 2>/dev/null
    [ -n "$proxy_pid" ] && stop_pid "$proxy_pid"
    stop_pid "$REDIS_PID"
    local logs=("$DIR"/w*.log "$DIR/probe.log")
    local check=(--name "$NAME" --state "$DIR/state" --workers "$WORKERS" --cycles "$CYCLES"
        --wait-ms "$WAIT" --bound-ms "$BOUND" --acq-bound-ms "$ACQ_BOUND" --summary "$summary")
    [ "$FENCING" = 1 ] && check+=(--fencing)
    [ -f "$DIR/losses" ] && check+=(--losses "$DIR/losses")
    if "$bin/fault_check" "${check[@]}" "$@" "${logs[@]}"; then
        :
    else
        failed+=("$NAME")
        echo "  (logs in $DIR; workers' stderr in $DIR/w*.err)"
    fi
    echo "  took $((SECONDS - t0)) s"
}

# run_load NAME BINARY [fault_load options]: against a redis-server of its own; the command is
# prefixed with the LOAD_PREFIX array (valgrind, env).
LOAD_PREFIX=()
run_load() {
    local name=$1 lbin=$2
    shift 2
    local dir=$work/$name t0=$SECONDS
    rm -rf "$dir"
    mkdir -p "$dir"
    echo "== $name"
    local port
    port=$(free_port)
    start_redis "$dir" "$port" 0 || {
        failed+=("$name")
        return
    }
    local before after
    before=$(redis-cli -p "$port" info stats | tr -d '\r' | grep total_connections_received |
        cut -d: -f2)
    if "${LOAD_PREFIX[@]}" "$lbin" -u "redis://127.0.0.1:$port" "$@" >"$dir/out" 2>&1; then
        :
    else
        failed+=("$name")
    fi
    after=$(redis-cli -p "$port" info stats | tr -d '\r' | grep total_connections_received |
        cut -d: -f2)
    stop_pid "$REDIS_PID"
    grep -v '^FIGURES' "$dir/out" | grep -E 'fault_load|ERROR SUMMARY|definitely lost' |
        sed 's/^/  /'
    grep '^FIGURES' "$dir/out" | sed "s/name=load/name=$name/" >>"$summary"
    echo "  connections opened to redis: $((after - before))"
    echo "  took $((SECONDS - t0)) s"
}

if [ $# -eq 0 ]; then
    if [ $smoke = 1 ]; then
        set -- clean
    else
        set -- clean clean-unfenced redis-kill redis-kill-nopersist client-kill redis-stop proxy \
            proxy-fenced holder-pause holder-pause-unfenced load load-asan load-valgrind fuzz
    fi
fi

suite_t0=$SECONDS
"$bin/fault_check" --selftest || failed+=(selftest)
for s in "$@"; do
    PAUSE_AT=()
    PAUSES=0
    KILLS=3
    LONG_EVERY=$((CYCLES / 4 > 0 ? CYCLES / 4 : 1))
    case $s in
    clean) scenario clean 1 0 inject_none --clean ;;
    clean-unfenced) scenario clean-unfenced 0 0 inject_none --clean ;;
    redis-kill) scenario redis-kill 1 1 inject_redis_kill --min-errors 1 ;;
    redis-kill-nopersist)
        KILLS=2
        scenario redis-kill-nopersist 1 0 inject_redis_kill --min-errors 1 --expect-allowed-overlaps
        ;;
    client-kill) scenario client-kill 1 0 inject_client_kill --min-errors 1 ;;
    redis-stop) scenario redis-stop 1 0 inject_redis_stop --min-errors 4 ;;
    proxy) scenario proxy 0 0 inject_proxy --min-errors 1 ;;
    proxy-fenced) scenario proxy-fenced 1 0 inject_proxy --min-errors 1 ;;
    holder-pause)
        PAUSE_AT=([0]=10 [1]=30)
        PAUSES=2
        scenario holder-pause 1 0 inject_pause --pauses 2
        ;;
    holder-pause-unfenced)
        PAUSE_AT=([0]=5)
        PAUSES=1
        saved=("$WORKERS" "$CYCLES")
        WORKERS=4
        CYCLES=$((CYCLES < 40 ? CYCLES : 40))
        scenario holder-pause-unfenced 0 0 inject_pause --pauses 1 --expect-lost-updates
        WORKERS=${saved[0]} CYCLES=${saved[1]}
        ;;
    load)
        LOAD_PREFIX=(env)
        run_load load "$bin/fault_load" -M 64
        ;;
    load-asan)
        if [ -n "${FAULT_ASAN_BUILD:-}" ] && [ -x "$FAULT_ASAN_BUILD/tests/fault/fault_load" ]; then
            LOAD_PREFIX=(env ASAN_OPTIONS=detect_leaks=1)
            run_load load-asan "$FAULT_ASAN_BUILD/tests/fault/fault_load"
        else
            echo "== load-asan skipped (set FAULT_ASAN_BUILD to an ASan build, e.g. build-asan)"
        fi
        ;;
    load-valgrind)
        if command -v valgrind >/dev/null; then
            LOAD_PREFIX=(valgrind --quiet --error-exitcode=1 --leak-check=full
                --errors-for-leak-kinds=definite,indirect)
            if [ -f "$root/tests/valgrind.supp" ]; then
                LOAD_PREFIX+=(--suppressions="$root/tests/valgrind.supp")
            fi
            run_load load-valgrind "$bin/fault_load" -t 20 -n 200
        else
            echo "== load-valgrind skipped (no valgrind)"
        fi
        ;;
    fuzz)
        secs=${FAULT_FUZZ_SECONDS:-30}
        if [ "$secs" -gt 0 ]; then
            echo "== fuzz ($secs s per target)"
            if FUZZ_SECONDS=$secs "$root/fuzz/run.sh" "$work/fuzz" >"$work/fuzz.out" 2>&1; then
                :
            else
                failed+=(fuzz)
            fi
            grep -E '^(fuzz|FIGURES)' "$work/fuzz.out" | grep -v '^FIGURES' | sed 's/^/  /'
            grep '^FIGURES' "$work/fuzz.out" >>"$summary"
        fi
        ;;
    *)
        echo "run.sh: unknown scenario $s" >&2
        failed+=("$s")
        ;;
    esac
done

# ---- figures ----
# sum_field FIELD [REGEX]: the sum of FIELD over the summary lines that match REGEX.
sum_field() {
    grep -E "${2:-^FIGURES}" "$summary" | tr ' ' '\n' | grep "^$1=" | cut -d= -f2 |
        awk '{s += $1} END {print s + 0}'
}
mx='^FIGURES name=(clean|redis|client|proxy|holder)'
promised='^FIGURES name=(clean|clean-unfenced|redis-kill|redis-kill-nopersist|client-kill|redis-stop|proxy|proxy-fenced|holder-pause) '
echo
echo "== figures"
echo "  hold cycles checked:        $(sum_field holds "$mx")"
echo "  faults injected:            $(sum_field n '^FAULTS')"
echo "  overlaps while both valid:  $(sum_field overlaps "$mx") (promised 0)"
echo "  overlap pairs after a data loss: $(sum_field allowed_overlaps "$mx") (allowed only across a restart without persistence; fencing refused one side of each)"
echo "  takeovers after lease end:  $(sum_field takeovers "$mx") hold pairs (paused holders)"
echo "  lost updates:               $(sum_field lost_updates "$promised") (promised 0); unfenced pause run: $(sum_field lost_updates '^FIGURES name=holder-pause-unfenced ') (must be > 0)"
echo "  stale writes rejected:      $(sum_field stale_rejected "$mx") (fencing); storage accesses rejected in all: $(sum_field rejected "$mx")"
echo "  orphaned keys:              $(sum_field orphans "$mx") after failures the library could not verify ($(sum_field orphans_silent "$mx") with a message that does not say so)"
echo "  failed calls, all in time:  $(sum_field errors "$mx"); slowest $(grep -E "$mx" "$summary" | tr ' ' '\n' | grep '^max_err_ms=' | cut -d= -f2 | sort -n | tail -1) ms (bounds: $BOUND ms; blocking acquire $WAIT + $ACQ_BOUND ms)"
echo "  load cycles:                $(sum_field cycles '^FIGURES name=load') (errors $(sum_field errors '^FIGURES name=load'), exclusion violations $(sum_field violations '^FIGURES name=load'))"
echo "  fuzz inputs executed:       $(sum_field execs '^FIGURES name=fuzz')"
echo "  suite time:                 $((SECONDS - suite_t0)) s"
if [ ${#failed[@]} -gt 0 ]; then
    echo "FAILED: ${failed[*]} (work dir $work)"
    exit 1
fi
echo "all passed"
if [ -z "${FAULT_WORK:-}" ]; then
    rm -rf "$work"
fi
