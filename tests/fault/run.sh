#!/usr/bin/env bash
# run.sh: dlock's fault-injection suite (issue 7). Runs the mutual-exclusion check clean and
# under each fault, the load test (plain, ASan, valgrind) and the fuzzers, then prints figures.
#
#   tests/fault/run.sh [--smoke | --soak] BUILD_DIR [SCENARIO...]
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
#   waiter-kill           blocking waiters with hand-offs, default 10 s lease; a victim waiter is
#                         SIGKILLed while queued, 8 times, and one worker gives up every other
#                         wait: the next live waiter must get the lock within 1 s of the release
#                         that follows (dead-waiter idle max <= 1000 ms)
#   waiter-pause          SIGSTOP 0.2-2.5 s of waiters and holders by turns (2 s lease, fencing)
#   pubsub-delay          every grant message arrives 1.5 s late (fault_proxy delays what Redis
#                         sends on each SUBSCRIBE connection after the SUBSCRIBE reply); four of
#                         the six workers reuse one token for all their acquires, as
#                         @upstash/lock does with its uuid, so a late message names a later wait
#   drop-release          the reply to the hand-off release is dropped, the connection left open
#   drop-renew            auto-renewed holders (1.5 s holds, 2 s lease) whose renewal replies are
#                         dropped
#   renew-extend          auto-renewed holders (400 ms lease) that extend by 3 s right after the
#                         acquire, with every renewal reply dropped: a renewal must not shorten
#                         what the extend promised
# Besides overlaps and lost updates, the waiter scenarios fail on a broken promise (a release or
# extend that finds the key not ours inside the validity given), on any call over its bound, and
# on more failed calls than the faults explain (none, or one per dropped reply). Every fenced
# scenario also fails on fencing tokens out of order (an acquire that began after another had
# returned and got a token that is not larger), except across a data loss.
#   cluster-failover      on a Redis Cluster of 3 masters + 3 replicas (harness/cluster-env.sh,
#                         started once for the three cluster scenarios): 6 ids, 2 in each master's
#                         slots, 3 workers each, all through one URL of the cluster; CLUSTER
#                         FAILOVER on each master's replica and back again (6 coordinated
#                         failovers, each at the start of a 1 s hold): no overlap, no broken
#                         promise, and no id stands still for more than 3 s
#   cluster-kill          each master in turn: its replica paused and its replication link cut
#                         (CLIENT KILL TYPE replica), the master SIGKILLed at the start of a 6 s
#                         hold (lease 10 s), the replica resumed and promoted, the killed node
#                         restarted as its replica. Lock option wait_replicas = 1 (each master
#                         has exactly one replica, the one promoted): no overlap, no broken
#                         promise, calls that fail meanwhile fail as errors in time (never a false
#                         answer), no id still for more than 20 s
#   cluster-kill-async    the same without wait_replicas: the lock the master took after the cut
#                         is lost, and the second holder must be seen (an overlap after the loss,
#                         counted apart); the same logs checked without the loss times must fail
#   quorum                fault/quorum_fault: 5 workers x 100 fenced holds on a Redlock over five
#                         servers with AOF (harness/quorum-env.sh) while 1 or 2 of them at a time
#                         are SIGSTOPped, or SIGKILLed and restarted from their AOF: no overlap,
#                         fencing tokens in hold order, no lost update, every worker done
#   load                  fault_load 100 threads x 1000 cycles (plain build)
#   load-asan             the same under ASan, if $FAULT_ASAN_BUILD names an ASan build
#   load-valgrind         20 threads x 50 cycles under valgrind
#   fuzz                  fuzz/run.sh, $FAULT_FUZZ_SECONDS (default 30) per target
#
# Environment: FAULT_WORKERS (8), FAULT_CYCLES (200), FAULT_WORK (scratch dir, default a temp
# dir removed on success), FAULT_ASAN_BUILD, FAULT_FUZZ_SECONDS, FAULT_BIN, FAULT_QUORUM_WORKERS
# (5), FAULT_QUORUM_HOLDS (100), FAULT_CLUSTER_THINK (10 ms between a cluster worker's holds);
# FAULT_BROKEN=1 makes every worker deliberately broken (fault_worker -U) to show the checks can
# fail.
# --smoke: a quick clean run (4 workers x 25 holds), for ctest.
# --soak: `make soak`. Rounds of the scenarios above with short holds (ms), every fault kind in
# turn, until SOAK_HOLDS (1000000) holds are checked or SOAK_MINUTES (30) pass; then the totals:
# holds checked, faults by kind, overlaps, errors, dead-waiter idle max/p99. Non-zero on any
# overlap or failed check. SOAK_ROUND_SECS (60) sets the length of a timed round, SOAK_CELLS (1)
# how many ids contend side by side in it. About 1M holds in 20 minutes on 2 cores.
#
# Every redis-server and proxy is started here, as a child of this script, and stopped by PID;
# the cluster's and the quorum's servers are daemons that their harness scripts start and stop
# by PID file (also when this script exits early).
set -uo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
smoke=0
SOAK=0
if [ "${1:-}" = --smoke ]; then
    smoke=1
    shift
elif [ "${1:-}" = --soak ]; then
    SOAK=1
    shift
fi
[ $# -ge 1 ] || {
    echo "usage: run.sh [--smoke | --soak] BUILD_DIR [SCENARIO...]" >&2
    exit 2
}
build=$(cd "$1" && pwd)
shift
bin=${FAULT_BIN:-$build/tests/fault}
for p in fault_worker fault_check fault_proxy fault_load quorum_fault; do
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
SOAK_HOLDS=${SOAK_HOLDS:-1000000}
SOAK_MINUTES=${SOAK_MINUTES:-30}
SOAK_ROUND_SECS=${SOAK_ROUND_SECS:-60}
SOAK_CELLS=${SOAK_CELLS:-1}
CYCLES=${FAULT_CYCLES:-200}
QUORUM_WORKERS=${FAULT_QUORUM_WORKERS:-5}
QUORUM_HOLDS=${FAULT_QUORUM_HOLDS:-100}
# The cluster scenarios: think time between holds (ms), and how long an id may stand still after
# a coordinated failover, and around a kill: the replica is cut off for up to 5 s first (with
# wait_replicas no lock can be taken meanwhile), detection takes cluster-node-timeout (2 s) and
# the election 1-2 s more.
CLUSTER_THINK=${FAULT_CLUSTER_THINK:-10}
CLUSTER_FAILOVER_GAP_MS=3000
CLUSTER_KILL_GAP_MS=20000
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

# sum_field FIELD [REGEX]: the sum of FIELD over the summary lines that match REGEX.
sum_field() {
    grep -E "${2:-^FIGURES}" "$summary" | tr ' ' '\n' | grep "^$1=" | cut -d= -f2 |
        awk '{s += $1} END {print s + 0}'
}

# max_field FIELD [REGEX]: the largest FIELD over the summary lines that match REGEX.
max_field() {
    grep -E "${2:-^FIGURES}" "$summary" | tr ' ' '\n' | grep "^$1=" | cut -d= -f2 | sort -n |
        tail -1
}

# On exit, stop what is still running of ours: `jobs -p` lists only this shell's children that
# have not been reaped, so no PID here can have been reused by someone else's process.
# The cluster's and the quorum's servers are daemons, stopped by their harness (by PID file).
CLUSTER_DIR="" QUORUM_DIR=""
cleanup() {
    local pid
    for pid in $(jobs -p); do
        kill -CONT "$pid" 2>/dev/null
        kill -KILL "$pid" 2>/dev/null
    done
    if [ -n "$CLUSTER_DIR" ]; then
        bash "$root/tests/harness/cluster-env.sh" stop "$CLUSTER_DIR" >/dev/null 2>&1
    fi
    if [ -n "$QUORUM_DIR" ]; then
        bash "$root/tests/harness/quorum-env.sh" stop "$QUORUM_DIR" >/dev/null 2>&1
    fi
}
trap cleanup EXIT

now_us() { "$bin/fault_worker" now; }

# The redis-server lifecycle helpers every script of dlock shares (free ports, PING). Its own
# start loop stays here: it runs AOF children that the scenarios SIGKILL and restart.
# shellcheck source=tests/harness/redis-lib.sh
. "$root/tests/harness/redis-lib.sh"
port_free() { ! dl_port_in_use "$1"; }
free_port() { dl_free_port; }

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
            if dl_redis_ping "$port"; then
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

# ---- injectors for waiters (issue 10) ----

# hold_count: holds logged so far by the regular workers.
hold_count() {
    cat "$DIR"/w[0-9]*.log 2>/dev/null | grep -c '^hold'
}

# wait_holds N SECS: until the regular workers logged N more holds, or SECS passed.
wait_holds() {
    local want=$(($(hold_count) + $1)) i
    for ((i = 0; i < $2 * 20; i++)); do
        [ "$(hold_count)" -ge "$want" ] && return 0
        sleep 0.05
    done
    return 1
}

# start_victim K: a victim worker (SIGKILLed while queued), with the marker that holds its
# current token while it is inside acquire; sets VPID.
start_victim() {
    rm -f "$DIR/victim.marker"
    "$bin/fault_worker" worker "${COMMON[@]}" -i "$ID" -w $((100 + $1)) -n 0 -V \
        -W "$SC_WAIT" -c "$SC_CS" -t "$SC_THINK" -s "$DIR/state" -k "$DIR/victim.marker" \
        -o "$DIR/v$1.log" 2>"$DIR/v$1.err" &
    VPID=$!
}

# SIGKILLs a victim while it is queued, KILLS times. "Queued": inside acquire with the same token
# for 30 ms. Right after the kill, Redis is asked whose token the key holds: if the victim's and
# the victim had logged that its acquire returned OK, it died holding, which costs a lease and
# is not counted as a dead waiter (fault_check leaves such gaps out of the figure). Then it waits for the queue to pass the dead entry before the next kill.
inject_waiter_kill() {
    local n=0 k=0 tries=0 tok t t2 held kind i ok
    while [ $n -lt "$KILLS" ] && [ $tries -lt $((KILLS * 4)) ]; do
        tries=$((tries + 1))
        start_victim $k
        ok=0
        for ((i = 0; i < 300; i++)); do
            if [ -s "$DIR/victim.marker" ]; then
                tok=$(cat "$DIR/victim.marker" 2>/dev/null)
                sleep 0.03
                if [ -n "$tok" ] && [ "$(cat "$DIR/victim.marker" 2>/dev/null)" = "$tok" ]; then
                    ok=1
                    break
                fi
            fi
            sleep 0.01
        done
        t=$(now_us)
        kill -KILL "$VPID" 2>/dev/null
        wait "$VPID" 2>/dev/null
        t2=$(now_us) # it died between t and t2
        held=$(redis-cli -p "$PORT" get "$ID" 2>/dev/null)
        kind=waiter
        # It held if it had been told so (its acquire returned OK, which it logs at once); a key
        # that holds its token although it never learned of it was handed to it dead.
        if [ $ok = 0 ] || { [ "$held" = "$tok" ] &&
            tail -1 "$DIR/v$k.log" | grep -q '^acq [0-9]* [0-9]* 0 '; }; then
            kind=holder
        fi
        echo "kill $t $((100 + k)) $kind $t2" >>"$DIR/events"
        k=$((k + 1))
        [ $kind = waiter ] && n=$((n + 1))
        # The dead entry is at most one per worker down the queue; with a dead waiter handed the
        # lock, the next hold comes only when its lease ends.
        wait_holds $((WORKERS + 2)) $((SC_LEASE / 1000 + 5)) || true
    done
    touch "$DIR/stopw"
    while workers_alive; do sleep 0.1; done
    record_faults "$NAME" "$k" "SIGKILL of $n queued waiters ($((k - n)) turned out to hold)"
}

# SIGSTOPs workers for 0.2-2.5 s: by turns one that is waiting inside acquire and one that is
# not (holding or between holds), PAUSES_N times; each pause is logged for the checker.
inject_waiter_pause() {
    local n=0 i j pid ms t0 t1 want
    while [ $n -lt "$PAUSES_N" ] && workers_alive; do
        want=$((n % 2))
        pid=""
        for ((j = 0; j < 100; j++)); do
            [ -n "$pid" ] && break
            i=$((RANDOM % WORKERS))
            if { [ $want = 0 ] && [ -e "$DIR/m$i" ]; } || { [ $want = 1 ] && [ ! -e "$DIR/m$i" ]; }; then
                pid=${WPIDS[$i]}
            else
                sleep 0.01
            fi
        done
        [ -n "$pid" ] || continue
        ms=$((200 + RANDOM % 2300))
        t0=$(now_us)
        kill -STOP "$pid"
        sleep "$(printf '%d.%03d' $((ms / 1000)) $((ms % 1000)))"
        kill -CONT "$pid"
        t1=$(now_us)
        echo "stop $i $t0 $t1" >>"$DIR/events"
        n=$((n + 1))
        sleep 0.2
    done
    touch "$DIR/stopw"
    while workers_alive; do sleep 0.1; done
    record_faults "$NAME" "$n" "SIGSTOP 0.2-2.5 s of waiters and holders by turns"
}

# The proxy rules are armed from its command line (PROXY_RULES); this runs SC_SECS seconds,
# optionally re-arming REARM every REARM_MS ms.
inject_timed() {
    local t_end=$((SECONDS + SC_SECS))
    while [ $SECONDS -lt $t_end ] && workers_alive; do
        if [ -n "${REARM:-}" ]; then
            proxy_ctl "$REARM" >/dev/null
            sleep "0.$(printf '%03d' "$REARM_MS")"
        else
            sleep 0.1
        fi
    done
    touch "$DIR/stopw"
    while workers_alive; do sleep 0.1; done
    proxy_ctl clear >/dev/null
    local stats
    stats=$(proxy_ctl stats)
    PROXY_FIRED=$(echo "$stats" | tr ' ' '\n' | grep -E "^${FIRED_KIND:-drop}=" | cut -d= -f2)
    record_faults "$NAME" "${PROXY_FIRED:-0}" "proxy: $stats"
}

# ---- the Redis Cluster (issue 11) and the Redlock quorum (issue 12) ----

# cl CMD [ARGS...]: tests/harness/cluster-env.sh CMD on this run's cluster.
cl() {
    local cmd=$1
    shift
    bash "$root/tests/harness/cluster-env.sh" "$cmd" "$CLUSTER_DIR" "$@"
}

# cluster_up: the run's cluster (3 masters + 3 replicas, cluster-node-timeout 2 s), started by
# the first cluster scenario and kept for the next, which finds it whole again (each scenario
# ends with every node back and synced). Sets CLUSTER_URL, the one URL the workers are given.
cluster_up() {
    if [ -z "$CLUSTER_DIR" ]; then
        CLUSTER_DIR=$work/cluster
        if ! cl start >"$work/cluster.out" 2>&1; then
            echo "  FAIL: the cluster did not start; see $work/cluster.out"
            return 1
        fi
    fi
    if ! cl wait >>"$work/cluster.out" 2>&1; then
        echo "  FAIL: the cluster is not whole; see $CLUSTER_DIR/node*.log"
        return 1
    fi
    CLUSTER_URL=$(sed -n 's/^DLOCK_TEST_CLUSTER_URL=//p' "$CLUSTER_DIR/env")
}

# cluster_cells: 3 x CL_PER_SHARD ids for the scenario's cells, CL_PER_SHARD in each master's
# slots (the cluster says which slot a candidate id has). Sets SC_CELLS, CELL_ID, and CELL_SHARD
# (0..2: the shard's line in `cluster-env.sh shards`, in slot order).
cluster_cells() {
    local firsts=() count=(0 0 0) k=0 c=0 slot s id port=${CLUSTER_URL##*:}
    mapfile -t firsts < <(cl shards | cut -d' ' -f1)
    if [ ${#firsts[@]} != 3 ]; then
        echo "  FAIL: the cluster has ${#firsts[@]} shards with slots, not 3"
        return 1
    fi
    SC_CELLS=$((3 * CL_PER_SHARD))
    while [ $c -lt "$SC_CELLS" ] && [ $k -lt 1000 ]; do
        id="$ID:$k"
        k=$((k + 1))
        slot=$(redis-cli -h 127.0.0.1 -p "$port" cluster keyslot "$id")
        s=0
        [ "$slot" -ge "${firsts[1]}" ] && s=1
        [ "$slot" -ge "${firsts[2]}" ] && s=2
        [ "${count[s]}" -lt "$CL_PER_SHARD" ] || continue
        count[s]=$((count[s] + 1))
        CELL_ID[c]=$id
        CELL_SHARD[c]=$s
        c=$((c + 1))
    done
}

inject_fail() {
    echo "  FAIL: $*"
    INJECT_FAILED=1
}

# wait_long_hold SECS SHARD: until a long hold (fault_worker -L) begins, after this call, in a
# cell of SHARD, so that a fault lands at its start; 1 if none began within SECS.
wait_long_hold() {
    local i c d armed=()
    for ((i = 0; i < $1 * 100; i++)); do
        for c in "${!CELL_SHARD[@]}"; do
            [ "${CELL_SHARD[$c]}" = "$2" ] || continue
            d=$DIR
            [ "$c" = 0 ] || d=$DIR/c$c
            if [ ! -e "$d/state.longcs" ]; then
                armed[c]=1
            elif [ -n "${armed[$c]:-}" ]; then
                return 0
            fi
        done
        workers_alive || return 1
        sleep 0.01
    done
    return 1
}

# shard_loss SHARD T: T is when the cells of SHARD lost their data (fault_check --losses).
shard_loss() {
    local c
    for c in "${!CELL_SHARD[@]}"; do
        if [ "${CELL_SHARD[$c]}" = "$1" ]; then
            echo "$2" >>"$(cell_dir "$c")/losses"
        fi
    done
}

# The cluster's faults: CL_ROUNDS of them, shard after shard in slot order from cell 0's,
# CL_SETTLE_MS of work apart, each at the start of a long hold on the shard (or after CL_HOLD_WAIT
# s without one). CL_FAULT is
#   failover  CLUSTER FAILOVER on the shard's replica: it catches up with its master, then
#             takes over (a coordinated failover, as for maintenance)
#   kill      the shard's replica paused (SIGSTOP) and its link cut (CLIENT KILL TYPE replica on
#             the master), so that nothing the master acknowledges from then on reaches it; then
#             the master SIGKILLed at the start of a long hold, the replica resumed and promoted
#             (cluster-node-timeout 2 s), and once every node agrees the killed node is started
#             again and rejoins as its replica. Without wait_replicas the long hold's lock is
#             lost and a second holder gets in while the first still holds; with wait_replicas
#             = 1 no lock write counts while the replica is cut off, so none can be lost
# With CL_LOSSES=1 the time of each master kill is a data loss for the cells of its shard.
# Sets CL_TOOK: ms from each fault to a new master that every node agreed on.
inject_cluster() {
    local r n=0 shard m s t line took=()
    sleep_while_running 1500
    for ((r = 0; r < CL_ROUNDS; r++)); do
        shard=$(((CELL_SHARD[0] + r) % 3))
        line=$(cl shards | sed -n "$((shard + 1))p")
        m="" s=""
        read -r _ m s _ <<<"$line"
        if [ -z "$s" ]; then
            inject_fail "shard $shard has no replica to fail over to (shards: $line)"
            break
        fi
        case $CL_FAULT in
        failover)
            wait_long_hold "$CL_HOLD_WAIT" "$shard" || true
            t=$(now_us)
            cl failover "$s" || inject_fail "CLUSTER FAILOVER to node$s"
            ;;
        kill)
            cl pause "$s" || inject_fail "SIGSTOP of node$s"
            cl cut "$m" || inject_fail "CLIENT KILL TYPE replica on node$m"
            wait_long_hold "$CL_HOLD_WAIT" "$shard" || true
            t=$(now_us)
            cl kill "$m" || inject_fail "kill of node$m"
            # The data is lost once the master is dead, which `kill` waits for: a lock it took
            # while the command was on its way is lost too.
            [ "$CL_LOSSES" = 1 ] && shard_loss "$shard" "$(now_us)"
            cl resume "$s" || inject_fail "SIGCONT of node$s"
            cl wait-master "$s" || inject_fail "node$s was not promoted"
            ;;
        esac
        took+=($((($(now_us) - t) / 1000)))
        echo "cluster $t $CL_FAULT shard=$shard master=node$m replica=node$s" >>"$DIR/events"
        n=$((n + 1))
        if [ "$CL_FAULT" = kill ]; then
            cl restart "$m" || inject_fail "restart of node$m"
        fi
        cl wait || inject_fail "the cluster is not whole again after the fault on shard $shard"
        [ "$INJECT_FAILED" = 1 ] && break
        sleep_while_running "$CL_SETTLE_MS" || break
    done
    touch "$DIR/stopw"
    while workers_alive; do sleep 0.1; done
    CL_TOOK="${took[*]}"
    record_faults "$NAME" "$n" "$CL_WHAT"
}

# cluster_figures: the scenario's figures over all its cells (one line), after the checks.
cluster_figures() {
    local re="^FIGURES name=$NAME(:c[0-9]+)? "
    echo "  all ${SC_CELLS} ids: holds $(sum_field holds "$re"), overlaps while valid" \
        "$(sum_field overlaps "$re") (after a loss $(sum_field allowed_overlaps "$re")), tokens" \
        "out of order $(sum_field fence_backwards "$re"), failed calls $(sum_field errors "$re")," \
        "longest pause in holds $(max_field max_gap_ms "$re") ms; new master agreed" \
        "${CL_TOOK// / ms, } ms after each fault"
    echo "FAILOVER name=$NAME fault=$CL_FAULT took_ms=${CL_TOOK// /,}" \
        "max_gap_ms=$(max_field max_gap_ms "$re")" >>"$summary"
}

# check_lost_locks CHECK_OPTIONS...: for cluster-kill-async. The kills must have let a second
# holder in somewhere (overlaps after a loss), and the logs of the cell with the most of them,
# checked once more without the loss times (and without --summary, so that this failure stays
# out of the figures), must fail on overlaps: a failover that loses a lock cannot pass a cluster
# scenario unseen.
check_lost_locks() {
    local best="" most=0 name n out d
    while read -r name n; do
        if [ "$n" -gt "$most" ]; then
            best=$name most=$n
        fi
    done < <(grep -E "^FIGURES name=$NAME(:c[0-9]+)? " "$summary" |
        sed 's/^FIGURES name=\([^ ]*\) .* allowed_overlaps=\([0-9]*\) .*/\1 \2/')
    if [ "$most" = 0 ]; then
        echo "  FAIL: no kill lost a lock (no overlap after a loss): the fault did not bite"
        return 1
    fi
    d=$DIR
    [ "$best" = "$NAME" ] || d=$DIR/${best##*:}
    if out=$("$bin/fault_check" --name "$best:unlossed" --state "$d/state" "$@" "$d"/w*.log); then
        echo "  FAIL: without the loss times the checker passed $best: it did not see the overlap"
        return 1
    fi
    n=$(grep -c "two holders while both leases were valid" <<<"$out")
    if [ "$n" = 0 ]; then
        echo "  FAIL: without the loss times the checker failed $best, but not on an overlap:"
        grep FAIL <<<"$out" | head -n 3
        return 1
    fi
    echo "  locks lost: $most overlapping hold pairs in $best; without the loss times the checker" \
        "fails it, as it must ($n overlaps reported), e.g."
    grep -m 1 "two holders" <<<"$out" | sed 's/^ *FAIL: /    /'
}

# run_quorum NAME WORKERS HOLDS: quorum_fault (tests/fault/quorum_fault.c) against five servers
# of its own (tests/harness/quorum-env.sh, appendfsync always). It pauses 1 or 2 of them, or
# kills them and restarts them from their AOF, over and over while its workers take the Redlock,
# and checks mutual exclusion, fencing order and lost updates itself.
run_quorum() {
    local name=$1 dir=$work/$1 t0=$SECONDS rc=0
    local harness=$root/tests/harness/quorum-env.sh
    rm -rf "$dir"
    mkdir -p "$dir"
    echo "== $name (a Redlock over 5 servers, $2 workers x $3 fenced holds, lease 1 s)"
    QUORUM_DIR=$dir/env
    if ! bash "$harness" start "$QUORUM_DIR" >"$dir/env.out" 2>&1; then
        echo "  FAIL: the five servers did not start; see $dir/env.out"
        failed+=("$name")
        return
    fi
    DLOCK_TEST_ENV_DIR=$QUORUM_DIR DLOCK_QUORUM_HARNESS=$harness "$bin/quorum_fault" "$2" "$3" \
        >"$dir/out" 2>&1 || rc=1
    bash "$harness" stop "$QUORUM_DIR" >/dev/null 2>&1
    QUORUM_DIR=""
    grep -v -E '^(FIGURES|FAULTS) ' "$dir/out" | sed 's/^/  /'
    grep -E '^(FIGURES|FAULTS) ' "$dir/out" | sed "s/ name=quorum / name=$name /" >>"$summary"
    grep -q "^FIGURES name=quorum " "$dir/out" || rc=1
    if [ $rc != 0 ]; then
        failed+=("$name")
        echo "  (output in $dir/out)"
    fi
    echo "  took $((SECONDS - t0)) s"
}

# ---- one mutual-exclusion run ----

# Per-scenario settings, reset before each scenario (see the dispatch below): lease, wait,
# critical section (us), think time (ms); SC_PROXY=1 puts fault_proxy in front with the rules in
# PROXY_RULES; SC_UNTIL_STOP=1 runs the workers until the injector is done instead of for CYCLES
# holds; SC_ALL: options for every worker; SC_W[i]: options for worker i (split on spaces);
# SC_CHECK: options for fault_check; SC_CELL_CHECK: options for the check of every cell;
# SC_TOPO=cluster runs the workers on the Redis Cluster (cluster_cells picks the cells' ids).
reset_settings() {
    SC_LEASE=$LEASE SC_WAIT=$WAIT SC_CS=2000 SC_THINK=5 SC_PROXY=0 SC_UNTIL_STOP=0 SC_SECS=15
    SC_MARKERS=0 SC_TIMER=0 SC_MAX_ERR_FIRED=0 SC_CELLS=1 CPIDS=() SC_TOPO=single
    PROXY_RULES=() SC_ALL=() SC_W=() SC_CHECK=() SC_CELL_CHECK=() REARM="" REARM_MS=150
    FIRED_KIND=drop PROXY_FIRED=0 CELL_ID=() CELL_SHARD=() INJECT_FAILED=0 SC_LOST_LOCKS=0
    CL_TOOK=""
}

# cell_dir C: where cell C keeps its storage and logs (cell 0 is the scenario's own directory).
cell_dir() {
    if [ "$1" = 0 ]; then
        echo "$DIR"
    else
        echo "$DIR/c$1"
    fi
}

# scenario NAME FENCING PERSIST INJECTOR [fault_check options...]
scenario() {
    NAME=$1 FENCING=$2 PERSIST=$3
    local injector=$4
    shift 4
    DIR=$work/$NAME
    ID="dlock-fault:$NAME"
    rm -rf "$DIR"
    mkdir -p "$DIR"
    : >"$DIR/events"
    local what="$CYCLES holds"
    [ "$SC_UNTIL_STOP" = 1 ] && what="until the faults are done"
    local t0=$SECONDS
    local try url direct proxy_pid=""
    if [ "$SC_TOPO" = cluster ]; then
        echo "== $NAME ($((3 * CL_PER_SHARD)) ids on the cluster's 3 masters, $WORKERS workers" \
            "each, $what, lease $SC_LEASE ms, fencing $FENCING)"
        if ! cluster_up || ! cluster_cells; then
            failed+=("$NAME")
            return
        fi
        url=$CLUSTER_URL
    else
        echo "== $NAME ($WORKERS workers, $what, lease $SC_LEASE ms, fencing $FENCING)"
        for try in 1 2 3; do
            PORT=$(free_port)
            start_redis "$DIR" "$PORT" "$PERSIST" && break
            [ $try = 3 ] && {
                failed+=("$NAME")
                return
            }
        done
        url=redis://127.0.0.1:$PORT
    fi
    direct=$url
    if [ "$injector" = inject_proxy ] || [ "$SC_PROXY" = 1 ]; then
        local lp r rules=()
        lp=$(free_port)
        CTL=$(free_port)
        for r in "${PROXY_RULES[@]}"; do
            rules+=(-r "$r")
        done
        "$bin/fault_proxy" -l "$lp" -u "$PORT" -c "$CTL" "${rules[@]}" >"$DIR/proxy.out" 2>&1 &
        proxy_pid=$!
        for _ in $(seq 1 100); do
            port_free "$CTL" || break
            sleep 0.02
        done
        url=redis://127.0.0.1:$lp
    fi
    COMMON=(-u "$url" -d "$direct" -l "$SC_LEASE" -C "$CONNECT_MS" -T "$COMMAND_MS" -D 240)
    # FAULT_BROKEN=1: deliberately broken workers (fault_worker -U), to show that a check bites.
    [ "${FAULT_BROKEN:-0}" = 1 ] && COMMON+=(-U)
    [ "$FENCING" = 1 ] && COMMON+=(-f)
    local cycles=$CYCLES
    [ "$SC_UNTIL_STOP" = 1 ] && cycles=0
    WPIDS=()
    local i extra c cdir cid
    # Cell 0 is the scenario as described; with SC_CELLS > 1 (the soak, the cluster) more cells
    # of the same workers contend for ids of their own beside it, under the same faults.
    for c in $(seq $((SC_CELLS - 1)) -1 0); do
        cdir=$(cell_dir "$c")
        cid=${CELL_ID[$c]:-$ID:c$c}
        [ "$c" = 0 ] && cid=${CELL_ID[0]:-$ID}
        mkdir -p "$cdir"
        for i in $(seq 0 $((WORKERS - 1))); do
            extra=(-c "$SC_CS" -t "$SC_THINK" -x "$DIR/stopw" "${SC_ALL[@]}")
            if [ "$c" = 0 ]; then
                [ "$SC_MARKERS" = 1 ] && extra+=(-k "$DIR/m$i")
                if [ -n "${PAUSE_AT[$i]:-}" ]; then
                    extra+=(-p "${PAUSE_AT[$i]}" -P 3000)
                fi
            fi
            # Long holds (a fault lands mid-hold): cell 0's first worker, every cell's on the
            # cluster.
            if [ "$i" = 0 ] && [ -n "${LONG_EVERY:-}" ] &&
                { [ "$c" = 0 ] || [ "$SC_TOPO" = cluster ]; }; then
                extra+=(-L "$LONG_EVERY")
            fi
            # shellcheck disable=SC2206 # SC_W entries are option lists without spaces inside
            [ -n "${SC_W[$i]:-}" ] && extra+=(${SC_W[$i]})
            "$bin/fault_worker" worker "${COMMON[@]}" -i "$cid" -w "$i" -n "$cycles" \
                -W "$SC_WAIT" -s "$cdir/state" -o "$cdir/w$i.log" "${extra[@]}" \
                2>"$cdir/w$i.err" &
            if [ "$c" = 0 ]; then
                WPIDS+=($!)
            else
                CPIDS+=($!)
            fi
        done
    done
    "$bin/fault_worker" probe "${COMMON[@]}" "${SC_ALL[@]}" -o "$DIR/probe.log" -x "$DIR/stop" \
        2>"$DIR/probe.err" &
    local probe=$! timer=""
    if [ "$SC_TIMER" = 1 ]; then
        # Rounds of the soak: the workers stop when the round's time is up.
        (sleep "$SC_SECS" && touch "$DIR/stopw") &
        timer=$!
    fi

    "$injector"
    [ -n "$timer" ] && wait "$timer" 2>/dev/null
    touch "$DIR/stopw"
    for i in "${CPIDS[@]}"; do
        wait "$i" 2>/dev/null
    done

    for i in "${WPIDS[@]}"; do
        wait "$i" 2>/dev/null
    done
    # The checker requires the probe's last calls to succeed: give it half a second (about 20
    # calls) after the injector has cleared its faults, so that a fault armed just before the
    # end cannot be the one its last calls meet. After proxy faults a call can take a command
    # timeout and a reconnect (seen: two probe calls of 0.5 s each at the very end), so those
    # scenarios wait 2 s.
    if [ "$injector" = inject_proxy ]; then
        sleep 2
    else
        sleep 0.5
    fi
    touch "$DIR/stop"
    wait "$probe" 2>/dev/null
    [ -n "$proxy_pid" ] && stop_pid "$proxy_pid"
    [ "$SC_TOPO" = cluster ] || stop_pid "$REDIS_PID"
    local logs=("$DIR"/w*.log "$DIR/probe.log")
    [ -n "$(ls "$DIR"/v*.log 2>/dev/null)" ] && logs+=("$DIR"/v*.log)
    local check=(--workers "$WORKERS" --cycles "$cycles" --wait-ms "$SC_WAIT" --bound-ms "$BOUND"
        --acq-bound-ms "$ACQ_BOUND" --summary "$summary")
    # The dead-waiter idle figure is the waiter scenarios'; a failover's outage is not one.
    [ "$SC_TOPO" = cluster ] || check+=(--idle-out "$work/idle.all")
    [ "$FENCING" = 1 ] && check+=(--fencing)
    # Failed calls the faults explain: one per reply the proxy dropped.
    [ "$SC_MAX_ERR_FIRED" = 1 ] && check+=(--max-errors "${PROXY_FIRED:-0}")
    local ok=1 a more=() copts
    if [ "$injector" = inject_timed ] && [ "${PROXY_FIRED:-0}" -eq 0 ]; then
        echo "  FAIL: the proxy's fault never fired (does its pattern still match what dlock sends?)"
        ok=0
    fi
    [ "$INJECT_FAILED" = 1 ] && ok=0
    copts=()
    [ -f "$DIR/losses" ] && copts+=(--losses "$DIR/losses")
    "$bin/fault_check" --name "$NAME" --state "$DIR/state" --events "$DIR/events" "${check[@]}" \
        "${copts[@]}" "${SC_CHECK[@]}" "${SC_CELL_CHECK[@]}" "$@" "${logs[@]}" || ok=0
    # The other cells: the checks that do not depend on what the injector did to cell 0.
    for a in "${SC_CHECK[@]}" "$@"; do
        case $a in --clean) more+=("$a") ;; esac
    done
    for c in $(seq 1 $((SC_CELLS - 1))); do
        cdir=$(cell_dir "$c")
        copts=()
        [ -f "$cdir/losses" ] && copts+=(--losses "$cdir/losses")
        "$bin/fault_check" --name "$NAME:c$c" --state "$cdir/state" "${check[@]}" \
            "${copts[@]}" "${more[@]}" "${SC_CELL_CHECK[@]}" "$cdir"/w*.log |
            grep -E 'FAIL|\] (ok|FAILED)' || true
        grep -q "^FIGURES name=$NAME:c$c ok=1" "$summary" || ok=0
    done
    [ "$SC_TOPO" = cluster ] && cluster_figures
    if [ "$SC_LOST_LOCKS" = 1 ]; then
        check_lost_locks --workers "$WORKERS" --cycles "$cycles" --fencing || ok=0
    fi
    if [ $ok = 1 ]; then
        [ "$SOAK" = 1 ] && rm -rf "$DIR"
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

# renew_pattern LEASE: fault_proxy's pattern for an auto-renewal request, EVALSHA sha 1 id token
# LEASE (6 elements, the lease last); an extend has the same shape with its own ms.
renew_pattern() {
    printf '*6\\r\\n$7\\r\\nEVALSHA&\\r\\n$%d\\r\\n%s\\r\\n' "${#1}" "$1"
}
# The release that hands off names the grant channel; nothing else sent by EVALSHA does.
RELEASE_PATTERN='EVALSHA&:grant:'

# run_soak SCENARIO...: rounds of the scenarios in turn until SOAK_HOLDS holds are checked or
# SOAK_MINUTES pass. A round is not started unless it can end in time (the slowest rounds take
# about a minute more than SOAK_ROUND_SECS).
run_soak() {
    local t_end=$((SECONDS + SOAK_MINUTES * 60)) round=0 held
    while :; do
        for s in "$@"; do
            held=$(sum_field holds '^FIGURES')
            if [ "$held" -ge "$SOAK_HOLDS" ] ||
                [ $((SECONDS + SOAK_ROUND_SECS + 60)) -gt $t_end ]; then
                return
            fi
            round=$((round + 1))
            echo "-- soak round $round: $s ($held holds checked so far, $((SECONDS - suite_t0)) s)"
            run_one "$s"
        done
    done
}

# with_workers N CMD...: runs CMD with WORKERS=N, then restores it.
with_workers() {
    local saved=$WORKERS
    WORKERS=$1
    shift
    "$@"
    WORKERS=$saved
}

if [ $# -eq 0 ]; then
    if [ $smoke = 1 ]; then
        set -- clean
    elif [ $SOAK = 1 ]; then
        set -- clean waiter-kill client-kill pubsub-delay proxy-fenced drop-release waiter-pause \
            renew-extend redis-stop drop-renew holder-pause redis-kill proxy
    else
        set -- clean clean-unfenced redis-kill redis-kill-nopersist client-kill redis-stop proxy \
            proxy-fenced holder-pause holder-pause-unfenced waiter-kill waiter-pause pubsub-delay \
            drop-release drop-renew renew-extend cluster-failover cluster-kill cluster-kill-async quorum load load-asan load-valgrind fuzz
    fi
fi

# soak_settings: short holds, workers that run until the round's time is up.
soak_settings() {
    if [ $SOAK = 1 ]; then
        SC_CS=${SOAK_CS_US:-200} SC_THINK=0 SC_UNTIL_STOP=1 SC_TIMER=1
        SC_SECS=$SOAK_ROUND_SECS SC_CELLS=$SOAK_CELLS
        LONG_EVERY="" # a hold of a second every 50 would cap a cell at a few hundred holds/s
    fi
}

run_one() {
    local s=$1
    PAUSE_AT=()
    PAUSES=0
    KILLS=3
    LONG_EVERY=$((CYCLES / 4 > 0 ? CYCLES / 4 : 1))
    reset_settings
    case $s in
    clean)
        soak_settings
        scenario clean 1 0 inject_none --clean
        ;;
    clean-unfenced) scenario clean-unfenced 0 0 inject_none --clean ;;
    redis-kill)
        soak_settings
        [ $SOAK = 1 ] && LONG_EVERY=200
        scenario redis-kill 1 1 inject_redis_kill --min-errors 1
        ;;
    redis-kill-nopersist)
        KILLS=2
        scenario redis-kill-nopersist 1 0 inject_redis_kill --min-errors 1 --expect-allowed-overlaps
        ;;
    client-kill)
        soak_settings
        scenario client-kill 1 0 inject_client_kill --min-errors 1
        ;;
    redis-stop)
        soak_settings
        scenario redis-stop 1 0 inject_redis_stop --min-errors 4
        ;;
    proxy | proxy-fenced)
        soak_settings
        scenario "$s" "$([ "$s" = proxy ] && echo 0 || echo 1)" 0 inject_proxy --min-errors 1
        ;;
    holder-pause)
        PAUSE_AT=([0]=10 [1]=30)
        PAUSES=2
        scenario holder-pause 1 0 inject_pause --pauses 2
        ;;
    holder-pause-unfenced)
        PAUSE_AT=([0]=5)
        PAUSES=1
        local saved=$CYCLES
        CYCLES=$((CYCLES < 40 ? CYCLES : 40))
        with_workers 4 scenario holder-pause-unfenced 0 0 inject_pause --pauses 1 \
            --expect-lost-updates
        CYCLES=$saved
        ;;
    waiter-kill)
        # The default lease: a dead waiter handed the lock would block it for 10 s.
        SC_LEASE=10000 SC_WAIT=30000 SC_CS=30000 SC_THINK=2 SC_UNTIL_STOP=1 KILLS=8
        SC_W=([3]="-G 15")
        [ $SOAK = 1 ] && KILLS=${SOAK_KILLS:-20} SC_CS=5000 SC_W=([3]="-G 3")
        with_workers 4 scenario waiter-kill 1 0 inject_waiter_kill --idle-max 1000 \
            --min-kills "$KILLS" --max-errors 0
        ;;
    waiter-pause)
        SC_CS=5000 SC_UNTIL_STOP=1 SC_MARKERS=1 PAUSES_N=10
        [ $SOAK = 1 ] && SC_CS=500 PAUSES_N=${SOAK_PAUSES:-16}
        with_workers 6 scenario waiter-pause 1 0 inject_waiter_pause --max-errors 0
        ;;
    pubsub-delay)
        # Every grant message 1.5 s late: waiters find their hand-offs by polling first, and the
        # message comes during a later wait. Workers 0-3 reuse their token (as @upstash/lock's
        # uuid), so that message names their later acquire too.
        SC_PROXY=1 SC_UNTIL_STOP=1 SC_SECS=15 FIRED_KIND=delayed
        # The SUBSCRIBE or SSUBSCRIBE command itself (the end of a bulk string, then the next
        # argument), not the word in the comments of a script sent with EVAL.
        PROXY_RULES=('delay s2c 1500 SUBSCRIBE\r\n$ 0')
        SC_W=([0]=-R [1]=-R [2]=-R [3]=-R)
        soak_settings
        with_workers 6 scenario pubsub-delay 1 0 inject_timed --max-errors 0
        ;;
    drop-release)
        SC_PROXY=1 SC_UNTIL_STOP=1 SC_SECS=12 SC_MAX_ERR_FIRED=1
        REARM="drop $RELEASE_PATTERN 1" REARM_MS=150
        soak_settings
        with_workers 6 scenario drop-release 1 0 inject_timed --min-errors 1
        ;;
    drop-renew)
        SC_PROXY=1 SC_UNTIL_STOP=1 SC_SECS=15
        REARM="drop $(renew_pattern "$LEASE") 1" REARM_MS=300
        SC_W=([0]="-a -c 1500000" [1]="-a -c 1500000" [2]="-a -c 1500000")
        soak_settings
        with_workers 6 scenario drop-renew 1 0 inject_timed --max-errors 0
        ;;
    renew-extend)
        # Lease 400 ms, renewal every 133 ms, extend by 3 s right after the acquire, every
        # renewal reply dropped (the renewal itself runs): a renewal that sets the lease back to
        # 400 ms breaks what the extend promised.
        SC_LEASE=400 SC_PROXY=1 SC_UNTIL_STOP=1 SC_SECS=10
        PROXY_RULES=("drop $(renew_pattern 400) 1000000")
        SC_W=([0]="-a -e 3000 -c 1200000" [1]="-a -e 3000 -c 1200000")
        soak_settings
        with_workers 5 scenario renew-extend 1 0 inject_timed --max-errors 0
        ;;
    cluster-failover | cluster-kill | cluster-kill-async)
        # 6 ids, 2 in each master's slots, 3 workers each, through one URL of the cluster. Every
        # cell's first worker makes long holds for the faults to land in.
        SC_TOPO=cluster SC_UNTIL_STOP=1 CL_PER_SHARD=2 CL_ROUNDS=3 CL_LOSSES=0
        SC_THINK=$CLUSTER_THINK
        case $s in
        cluster-failover)
            # Each master's replica takes over, then the old master takes it back; every 20th
            # hold of each cell's first worker lasts 1 s.
            CL_FAULT=failover CL_ROUNDS=6 CL_HOLD_WAIT=3 CL_SETTLE_MS=1000 LONG_EVERY=20
            CL_WHAT="CLUSTER FAILOVER (coordinated), at the start of a 1 s hold"
            SC_CELL_CHECK=(--max-gap-ms "$CLUSTER_FAILOVER_GAP_MS")
            with_workers 3 scenario "$s" 1 0 inject_cluster
            ;;
        cluster-kill | cluster-kill-async)
            # The default 10 s lease, so that a lock lost in the failover would still be valid
            # when the promoted replica takes new holders, and every 4th hold of each cell's
            # first worker lasts 6 s (a kill waits up to 5 s for one to begin).
            SC_LEASE=10000 SC_WAIT=20000 CL_FAULT=kill CL_HOLD_WAIT=5 CL_SETTLE_MS=2000 LONG_EVERY=4
            SC_ALL=(-H 6000) SC_CELL_CHECK=(--max-gap-ms "$CLUSTER_KILL_GAP_MS")
            if [ "$s" = cluster-kill ]; then
                # wait_replicas = 1: each master has exactly one replica, the one promoted.
                SC_ALL+=(-r 1)
                CL_WHAT="replica cut off, master SIGKILL at the start of a 6 s hold, replica promoted; wait_replicas=1"
            else
                # The same without WAIT: the lock the master took after the cut is lost, and
                # the checker must see the second holder (an overlap after the loss).
                CL_LOSSES=1 SC_LOST_LOCKS=1
                CL_WHAT="replica cut off, master SIGKILL at the start of a 6 s hold, replica promoted; no WAIT"
            fi
            with_workers 3 scenario "$s" 1 0 inject_cluster --min-errors 1
            ;;
        esac
        ;;
    quorum)
        run_quorum quorum "$QUORUM_WORKERS" "$QUORUM_HOLDS"
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
}

suite_t0=$SECONDS
"$bin/fault_check" --selftest || failed+=(selftest)
if [ $SOAK = 1 ]; then
    run_soak "$@"
else
    for s in "$@"; do
        run_one "$s"
    done
fi
if [ -n "$CLUSTER_DIR" ]; then
    cl stop >/dev/null 2>&1
    CLUSTER_DIR=""
fi

# ---- figures ----
mx='^FIGURES name=(clean|redis|client|proxy|holder|waiter|pubsub|drop|renew|cluster|quorum)'
promised='^FIGURES name=(clean|clean-unfenced|redis-kill|redis-kill-nopersist|client-kill|redis-stop|proxy|proxy-fenced|holder-pause|waiter-kill|waiter-pause|pubsub-delay|drop-release|drop-renew|renew-extend|cluster-failover|cluster-kill|cluster-kill-async|quorum)(:c[0-9]+)? '
# The dead-waiter idle figures of every run (ms, one an event): max and p99.
idle_n=0 idle_max=0 idle_p99=0
if [ -s "$work/idle.all" ]; then
    idle_n=$(wc -l <"$work/idle.all")
    idle_max=$(sort -n "$work/idle.all" | tail -1)
    idle_p99=$(sort -n "$work/idle.all" | awk -v n="$idle_n" '{v[NR] = $1}
        END {i = int((n * 99 + 99) / 100); if (i < 1) i = 1; print v[i]}')
fi
echo
echo "== figures"
echo "  hold cycles checked:        $(sum_field holds "$mx")"
echo "  faults injected:            $(sum_field n '^FAULTS')"
if [ $SOAK = 1 ]; then
    grep '^FAULTS' "$summary" | sed 's/^FAULTS name=\([^ ]*\) n=\([0-9]*\).*/\1 \2/' |
        awk '{n[$1] += $2; r[$1]++} END {for (k in n) printf "    %-22s %8d in %d rounds\n", k, n[k], r[k]}' |
        sort
fi
echo "  overlaps while both valid:  $(sum_field overlaps "$mx") (promised 0)"
echo "  overlap pairs after a data loss: $(sum_field allowed_overlaps "$mx") (allowed only across a data loss: a restart without persistence, a failover to a replica that missed the write; fencing refused one side of each)"
echo "  fencing tokens out of order: $(sum_field fence_backwards "$mx") (promised 0: an acquire that began after another had returned got a larger token, except across a data loss)"
echo "  takeovers after lease end:  $(sum_field takeovers "$mx") hold pairs (paused holders)"
echo "  lost updates:               $(sum_field lost_updates "$promised") (promised 0); unfenced pause run: $(sum_field lost_updates '^FIGURES name=holder-pause-unfenced ') (must be > 0)"
echo "  stale writes rejected:      $(sum_field stale_rejected "$mx") (fencing); storage accesses rejected in all: $(sum_field rejected "$mx")"
echo "  orphaned keys:              $(sum_field orphans "$mx") after failures the library could not verify ($(sum_field orphans_silent "$mx") with a message that does not say so)"
echo "  failed calls, all in time:  $(sum_field errors "$mx"); slowest $(grep -E "$mx" "$summary" | tr ' ' '\n' | grep '^max_err_ms=' | cut -d= -f2 | sort -n | tail -1) ms (bounds: $BOUND ms; blocking acquire its wait_ms, $WAIT by default, + $ACQ_BOUND ms)"
echo "  broken promises:            $(sum_field ghosts "$mx") (NOT_HELD or lost TAKEN inside the validity given; promised 0)"
echo "  waiters killed while queued: $(sum_field waiter_kills "$mx") (and $(sum_field holder_kills "$mx") that turned out to hold); waits given up: $(sum_field gaveup "$mx"); SIGSTOPs of workers: $(sum_field stops "$mx")"
echo "  dead-waiter idle:           max $idle_max ms, p99 $idle_p99 ms over $idle_n events (release -> next live holder after a waiter died or gave up; goal <= 1000 ms with the 10 s lease)"
echo "  holds granted with no validity left: $(sum_field zero_validity "$mx"); lost notices (auto-renew): $(sum_field lost_notices "$mx")"
# cluster_line NAME: "N faults, longest pause in holds X ms, overlaps Y" for one cluster scenario.
cluster_line() {
    local re="^FIGURES name=$1(:c[0-9]+)? "
    if grep -qE "$re" "$summary"; then
        echo "$(sum_field n "^FAULTS name=$1 ") faults, longest pause in holds" \
            "$(max_field max_gap_ms "$re") ms, overlaps $(sum_field overlaps "$re") + after the" \
            "loss $(sum_field allowed_overlaps "$re")"
    else
        echo "not run"
    fi
}
echo "  cluster (3 masters + 3 replicas, 6 ids through one URL):"
echo "    coordinated failover:     $(cluster_line cluster-failover) (promised 0)"
echo "    master kill, replica cut off, wait_replicas=1: $(cluster_line cluster-kill) (promised 0)"
echo "    the same without WAIT:    $(cluster_line cluster-kill-async) (must be > 0 after the loss: asynchronous replication lost the lock, and the checker sees it)"
if grep -q '^FIGURES name=quorum ' "$summary"; then
    echo "  quorum (Redlock, 5 servers): $(sum_field holds '^FIGURES name=quorum ') holds, $(sum_field n '^FAULTS name=quorum ') faults, overlaps $(sum_field overlaps '^FIGURES name=quorum ') (promised 0), tokens out of order $(sum_field fence_backwards '^FIGURES name=quorum ') (promised 0), failed acquires $(sum_field errors '^FIGURES name=quorum ')"
fi
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
