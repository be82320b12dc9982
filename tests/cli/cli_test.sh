#!/usr/bin/env bash
# cli_test.sh: tests of the `dlock` command against real redis-server processes.
#
#   tests/cli/cli_test.sh PATH/TO/dlock
#
# Runs against the servers of the CTest fixture (tests/harness/redis-env.sh) named by
# DLOCK_TEST_ENV_DIR, as the other suites do: the plain one (its database 11, so that no other
# suite's keys meet these) and the one with a password. Run by hand without it, the script starts
# such a fixture of its own. The destructive test (SIGSTOP) gets a private server. Every server
# started here is stopped by PID at exit. Prints "N passed, N failed" as its last line; exits 1
# on any failure. Needs bash, coreutils, python3, redis-server and redis-cli (Debian:
# redis-server redis-tools).
set -u

DLOCK=${1:?usage: cli_test.sh PATH/TO/dlock}
DLOCK=$(cd "$(dirname "$DLOCK")" && pwd)/$(basename "$DLOCK")
[ -x "$DLOCK" ] || {
    echo "cli_test.sh: $DLOCK is not executable" >&2
    exit 2
}
command -v redis-server >/dev/null || {
    echo "cli_test.sh: redis-server not found (apt-get install redis-server)" >&2
    exit 2
}

TMP=$(mktemp -d /tmp/dlock-cli-test.XXXXXX)
REST_TOKEN="rest-$RANDOM-$RANDOM-token"
ALL_OUTPUT=$TMP/all-output # every byte any dlock call printed, checked for secrets at the end
: >"$ALL_OUTPUT"
PASSED=0
FAILED=0

# --- servers ----------------------------------------------------------------------------------

HARNESS=$(cd "$(dirname "${BASH_SOURCE[0]}")/../harness" && pwd)
# shellcheck source=../harness/redis-lib.sh
. "$HARNESS/redis-lib.sh"

OWN_ENV=
cleanup() {
    # Children of this script (background dlock runs) first, by the PIDs we started.
    local pid
    for pid in $(jobs -p); do
        kill -TERM "$pid" 2>/dev/null
    done
    dl_redis_stop "$TMP/victim.pid"
    if [ -n "$OWN_ENV" ]; then
        bash "$HARNESS/redis-env.sh" stop "$OWN_ENV" >/dev/null
    fi
    rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
trap 'exit 129' HUP

ENV_DIR=${DLOCK_TEST_ENV_DIR:-}
if [ -z "$ENV_DIR" ] || [ ! -f "$ENV_DIR/env" ]; then
    OWN_ENV=$TMP/env
    ENV_DIR=$OWN_ENV
    bash "$HARNESS/redis-env.sh" start "$ENV_DIR" >/dev/null || exit 2
fi
# shellcheck source=/dev/null
. "$ENV_DIR/env"
main_PORT=$DLOCK_TEST_PORT
auth_PORT=$DLOCK_TEST_ACL_PORT
PASSWORD=$DLOCK_TEST_DEFAULT_PASS # the default user's, on the server with a password
DB=11
URL=redis://127.0.0.1:$main_PORT/$DB
AUTH_URL=redis://127.0.0.1:$auth_PORT
DEAD_URL=redis://127.0.0.1:$(dl_free_port)
export REDIS_URL=$URL
unset UPSTASH_REDIS_REST_URL UPSTASH_REDIS_REST_TOKEN DLOCK_PASSWORD REDISCLI_AUTH

rcli() {
    redis-cli -p "$main_PORT" -n "$DB" "$@"
}
# Keys of an earlier run against the same fixture (a re-run of this test by hand).
rcli flushdb >/dev/null

# --- assertions -------------------------------------------------------------------------------

ok() {
    PASSED=$((PASSED + 1))
    echo "ok   $1"
}

not_ok() {
    FAILED=$((FAILED + 1))
    echo "FAIL $1${2:+: $2}"
    if [ -s "$TMP/out" ] || [ -s "$TMP/err" ]; then
        sed 's/^/       out: /' "$TMP/out" 2>/dev/null
        sed 's/^/       err: /' "$TMP/err" 2>/dev/null
    fi
}

# t NAME WANT_RC COMMAND...: runs COMMAND with stdout in $TMP/out and stderr in $TMP/err and
# checks its exit status.
t() {
    local name=$1 want=$2 rc
    shift 2
    "$@" >"$TMP/out" 2>"$TMP/err"
    rc=$?
    cat "$TMP/out" "$TMP/err" >>"$ALL_OUTPUT"
    if [ "$rc" = "$want" ]; then
        ok "$name"
    else
        not_ok "$name" "exit $rc, want $want"
    fi
}

# err_has NAME TEXT / out_has NAME TEXT: the last t's stderr / stdout contains TEXT.
err_has() {
    if grep -qF -- "$2" "$TMP/err"; then ok "$1"; else not_ok "$1" "stderr lacks '$2'"; fi
}
out_has() {
    if grep -qF -- "$2" "$TMP/out"; then ok "$1"; else not_ok "$1" "stdout lacks '$2'"; fi
}

check() { # check NAME CONDITION-COMMAND...
    local name=$1
    shift
    if "$@"; then ok "$name"; else not_ok "$name"; fi
}

held() { # held ID: the key exists
    [ "$(rcli exists "$1")" = 1 ]
}

# wait_for COND...: polls a condition for up to 5 s.
wait_for() {
    local i
    for i in $(seq 1 100); do
        "$@" && return 0
        sleep 0.05
    done
    return 1
}

D=$DLOCK

# --- general usage ----------------------------------------------------------------------------

t "--version" 0 "$D" --version
out_has "--version names the version" "dlock 0."
t "--help" 0 "$D" --help
out_has "--help lists the exit codes" "   69    Redis unreachable"
for cmd in run acquire release extend status debounce; do
    t "$cmd --help" 0 "$D" "$cmd" --help
    out_has "$cmd --help shows its usage" "Usage: dlock $cmd"
done
t "help run" 0 "$D" help run
out_has "help run is run --help" "Usage: dlock run"
t "no command" 64 "$D"
t "unknown command" 64 "$D" frobnicate
err_has "unknown command is named" "unknown command 'frobnicate'"
t "unknown option" 64 "$D" run --bogus x -- true
err_has "unknown option points to help" "Try 'dlock run --help'"
err_has "getopt's message names dlock and the command" "dlock run: unrecognized option '--bogus'"
t "unknown top-level option" 64 "$D" --bogus status x
err_has "top-level getopt message names dlock" "dlock: unrecognized option '--bogus'"
t "missing option argument" 64 "$D" acquire x -l
err_has "missing argument names dlock acquire" "dlock acquire: option requires an argument"
t "-q with -v" 64 "$D" status -q -v x
err_has "-q with -v says so" "--quiet and --verbose exclude each other"
t "run without command" 64 "$D" run x
err_has "run without command says so" "missing COMMAND"
t "run options after ID" 64 "$D" run x -n true
err_has "run options after ID explained" "options go before ID"
t "acquire without id" 64 "$D" acquire
t "release without token" 64 "$D" release x
t "extend without duration" 64 "$D" extend x tok
t "status with two ids" 64 "$D" status a b
t "-n with -w" 64 "$D" run -n -w 1s x -- true
t "bad -E" 64 "$D" run -E 300 x -- true
err_has "bad -E names the option" "--conflict-exit-code"
t "bad --on-lost" 64 "$D" run --on-lost explode x -- true
t "acquire -n with -w" 64 "$D" acquire -n -w 1s x
err_has "acquire -n with -w says so, as run does" "--nonblock and --wait exclude each other"
t "-c with a COMMAND" 64 "$D" run -c 'true' x -- true
err_has "-c with a COMMAND says so" "-c and a COMMAND after ID exclude each other"

# --- durations --------------------------------------------------------------------------------

for bad in "" abc -1s 0 0ms 10x 1.5.5s 99999999999999h "1 s" 1e3 +5s 5S 1s2 .; do
    t "run --lease '$bad' is a usage error" 64 "$D" run --lease "$bad" x -- true
    err_has "run --lease '$bad' names the option" "--lease"
done
t "run --wait bad" 64 "$D" run --wait 5y x -- true
err_has "run --wait bad names the option" "--wait: '5y'"
t "run --kill-grace negative" 64 "$D" run --kill-grace -3s x -- true
err_has "run --kill-grace names the option" "--kill-grace: '-3s' is negative"
t "acquire -l overflow" 64 "$D" acquire -l 18446744073709551617ms x
err_has "overflow is too large" "is too large"
for short in 1ms 50ms 99ms 0.05s; do
    t "run --lease $short is below the floor" 64 "$D" run --lease "$short" x -- true
    err_has "run --lease $short names the floor" "shorter than 100ms, the shortest lease"
done
t "acquire --lease 1ms is below the floor" 64 "$D" acquire -l 1ms x
t "run --lease 100ms (the floor) holds the lock" 0 "$D" run -n -l 100ms floor -- sleep 0.4
t "extend D zero" 64 "$D" extend x tok 0
t "debounce --wait zero" 64 "$D" debounce --wait 0 x -- true
err_has "debounce --wait zero says why" "must be greater than zero"

# Good durations, checked through the lease they give (PTTL).
for spec in "500ms:400:500" "1.5s:1400:1500" "2m:119000:120000" "1h:3599000:3600000" \
    "10:9900:10000" "0.25s:150:250"; do
    IFS=: read -r d lo hi <<<"$spec"
    rcli del dur >/dev/null
    t "acquire -l $d" 0 "$D" acquire -l "$d" dur
    pttl=$(rcli pttl dur)
    check "acquire -l $d gives a lease of ~$hi ms (got $pttl)" test "$pttl" -ge "$lo" -a "$pttl" -le "$hi"
done
rcli del dur >/dev/null

# --- ids and URLs -----------------------------------------------------------------------------

t "empty id" 64 "$D" acquire ""
err_has "empty id says so" "ID must not be empty"
long_id=$(head -c 65537 /dev/zero | tr '\0' a)
t "over-long id" 64 "$D" status "$long_id"
err_has "over-long id says so" "longer than 65536"
t "odd id works" 0 "$D" acquire -l 5s $'we ird "id"\n{x}'
t "status --json escapes the id" 0 "$D" status --json $'we ird "id"\n{x}'
out_has "status --json escaped" '"id":"we ird \"id\"\u000a{x}"'
# Ids are bytes: one that is not UTF-8 still gives valid JSON, with its exact bytes in base64.
json_id_ok() { # json_id_ok FILE ID-HEX: FILE is one JSON object whose id_base64 decodes to ID
    python3 -c 'import base64, json, sys
o = json.loads(open(sys.argv[1], "rb").read().decode("utf-8"))
sys.exit(0 if base64.b64decode(o["id_base64"]) == bytes.fromhex(sys.argv[2]) else 1)' "$1" "$2"
}
t "status --json with a non-UTF-8 id" 1 "$D" status --json $'bin\xff\xfe\xc3(id'
check "status --json is valid JSON for a non-UTF-8 id" json_id_ok "$TMP/out" 62696efffec3286964
out_has "status --json: bytes that are not UTF-8 become U+FFFD" '"id":"bin\ufffd\ufffd\ufffd(id"'
t "status --json with a UTF-8 id" 1 "$D" status --json 'café ✓'
out_has "status --json passes UTF-8 through" '"id":"café ✓"'

for bad in "foo://x" "not a url" "redis://" "redis://host:99999" "redis://[::1"; do
    t "--url '$bad' is a usage error" 64 "$D" status --url "$bad" x
    err_has "--url '$bad' explained" "bad server URL"
done
t "REDIS_URL bad" 64 env REDIS_URL=foo://x "$D" status x
err_has "REDIS_URL bad names the source" "from REDIS_URL"
t "unreachable server" 69 "$D" status --url "$DEAD_URL" x
err_has "unreachable explained" "is Redis running"
t "unreachable via REDIS_URL" 69 env REDIS_URL="$DEAD_URL" "$D" run x -- true
err_has "unreachable names REDIS_URL" "from REDIS_URL"
t "--url wins over REDIS_URL" 1 env REDIS_URL="$DEAD_URL" "$D" status --url "$URL" free-id
t "server option before the command" 1 env REDIS_URL="$DEAD_URL" "$D" --url "$URL" status free-id

# --- acquire / status / extend / release ------------------------------------------------------

t "acquire" 0 "$D" acquire -l 20s k1
TOKEN=$(cat "$TMP/out")
check "acquire prints a UUID token" grep -qE '^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$' "$TMP/out"
check "acquire stores the token" test "$(rcli get k1)" = "$TOKEN"
check "acquire does not renew" test "$(rcli pttl k1)" -le 20000
t "acquire conflict" 1 "$D" acquire -n k1
err_has "conflict names the holder's lease" "is held by another holder"
t "acquire conflict -E 7" 7 "$D" acquire -n -E 7 k1
t "acquire conflict -q is silent" 1 "$D" acquire -n -q k1
check "acquire -q printed nothing" test ! -s "$TMP/err"
t "acquire conflict (default tries)" 1 "$D" acquire k1
err_has "default tries: the conflict says how it tried" "after 3 tries 100ms apart"
t "acquire -w 300ms conflict" 1 "$D" acquire -w 300ms k1
err_has "-w conflict says it waited, and how long" "is still held by another holder after waiting 3"
t "status held" 0 "$D" status k1
out_has "status says held" "k1: held, "
out_has "status says who holds it" "  holder: host="
out_has "status names the holder's command" "cmd=dlock acquire k1"
check "status never shows the holder's token" sh -c "! grep -qF '$TOKEN' '$TMP/out' '$TMP/err'"
t "status --token matching" 0 "$D" status --token "$TOKEN" k1
out_has "status --token says so" "held by this token"
t "status --token other" 1 "$D" status --token nope k1
out_has "status --token other says so" "held by another token"
t "status --json" 0 "$D" status --json --token "$TOKEN" k1
check "status --json shape" grep -qE '^\{"id":"k1","id_base64":"azE=","held":true,"remaining_ms":[0-9]+,"token_matches":true,"holder":"host=[^ ]+ pid=[0-9]+ since=[0-9T:Z-]+ cmd=dlock acquire k1","fencing_counter":0\}$' "$TMP/out"
t "status free" 1 "$D" status nothing-here
out_has "status says free" "nothing-here: free"
t "status --json free" 1 "$D" status -j nothing-here
out_has "status --json free shape" '{"id":"nothing-here","id_base64":"bm90aGluZy1oZXJl","held":false,"remaining_ms":0,"holder":null,"fencing_counter":0}'
rcli set noexp x >/dev/null
t "status no expiry" 0 "$D" status noexp
out_has "status says no expiry" "no expiry"
t "extend" 0 "$D" extend k1 "$TOKEN" 1m
check "extend added to the lease" test "$(rcli pttl k1)" -gt 60000
t "extend wrong token" 1 "$D" extend k1 wrong 1m
err_has "extend wrong token explained" "not held with this token"
t "release wrong token" 1 "$D" release k1 wrong
check "wrong release left the lock" held k1
t "release with token from stdin" 0 sh -c "echo '$TOKEN' | '$D' release k1 -"
check "release deleted the key" sh -c "! [ \"\$(redis-cli -p $main_PORT -n $DB exists k1)\" = 1 ]"
t "release again" 1 "$D" release k1 "$TOKEN"
t "extend after release" 1 "$D" extend k1 "$TOKEN" 5s
t "acquire --fencing" 0 "$D" acquire --fencing -l 1s fk
check "acquire --fencing: the first line is the token alone" \
    grep -qxE '[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}' <(head -n 1 "$TMP/out")
check "acquire --fencing: the first line is what the key holds" test "$(head -n 1 "$TMP/out")" = "$(rcli get fk)"
f1=$(sed -n 2p "$TMP/out")
check "acquire --fencing: the second line is the fencing number ($f1)" grep -qxE '[1-9][0-9]*' <(echo "$f1")
check "acquire --fencing: two lines" test "$(wc -l <"$TMP/out")" = 2
rcli del fk >/dev/null
t "acquire --fencing again" 0 "$D" acquire --fencing -l 1s fk
f2=$(sed -n 2p "$TMP/out")
check "fencing tokens increase ($f1 < $f2)" test "$f1" -lt "$f2"
# The README's pattern: the token from acquire's first line releases the lock.
rcli del fk >/dev/null
tok=$("$D" acquire --fencing -l 5s fk | head -n 1)
t "token=\$(dlock acquire --fencing | head -n 1) releases" 0 "$D" release fk "$tok"
t "acquire --json" 0 "$D" acquire --json --fencing -l 5s fk
check "acquire --json shape" grep -qE '^\{"id":"fk","id_base64":"Zms=","token":"[0-9a-f-]{36}","lease_ms":5000,"fencing_token":[0-9]+\}$' "$TMP/out"
rcli del fk >/dev/null

# A key of another type makes the server answer with an error.
rcli hset ahash f v >/dev/null
t "server error reply" 76 "$D" status ahash
err_has "server error shows the server's text" "WRONGTYPE"
# A key that is no lock is an error, never "held by another holder".
rcli rpush alist a b >/dev/null
for cmd in "acquire -n alist" "acquire alist" "acquire -q -n alist" "run -n alist -- true"; do
    # shellcheck disable=SC2086 # the words are the command line
    t "$cmd on a list: exit 76" 76 "$D" $cmd
    err_has "$cmd on a list: Redis's text" "WRONGTYPE"
    check "$cmd on a list: not called held" sh -c "! grep -q 'another holder' '$TMP/err'"
done

# --- run --------------------------------------------------------------------------------------

t "run records who holds it" 0 "$D" run -n hr -- "$D" status hr
out_has "run: status inside shows the command as holder" "cmd=$D status hr"
t "run: the holder record goes with the lock" 1 "$D" status --json hr
out_has "run: no holder after release" '"holder":null'
t "run passes the exit status" 3 "$D" run -n r1 -- sh -c 'exit 3'
check "run released the lock" sh -c "! [ \"\$(redis-cli -p $main_PORT -n $DB exists r1)\" = 1 ]"
t "run without --" 0 "$D" run -n r1 true
t "run: 128+signal" 137 "$D" run -n r1 -- sh -c 'kill -KILL $$'
check "run released after a killed child" sh -c "! [ \"\$(redis-cli -p $main_PORT -n $DB exists r1)\" = 1 ]"
t "run: environment" 0 "$D" run -n r1 -- sh -c 'echo "id=$DLOCK_ID tok=$DLOCK_TOKEN fence=${DLOCK_FENCING_TOKEN-unset}"; redis-cli -p '"$main_PORT"' -n '"$DB"' get r1'
check "run: DLOCK_TOKEN is the stored token" awk 'NR==1{split($2,a,"=")} NR==2{exit !(a[2]==$0)}' "$TMP/out"
out_has "run: DLOCK_ID" "id=r1 "
out_has "run: no fencing token without --fencing" "fence=unset"
t "run --fencing" 0 "$D" run -n --fencing r1 -- sh -c 'test "$DLOCK_FENCING_TOKEN" -gt 0'
t "run -c (before ID)" 7 "$D" run -n -c 'test "$DLOCK_ID" = r1 && exit 7' r1
t "run ID -c (flock's order)" 8 "$D" run -n r1 -c 'test -n "$DLOCK_TOKEN" && exit 8'
t "run -c uses \$SHELL" 0 env SHELL=/bin/bash "$D" run -n r1 -c 'test -n "$BASH_VERSION"'
t "run -c without SHELL uses /bin/sh" 0 env -u SHELL "$D" run -n r1 -c 'exit 0'
check "run -c released the lock" sh -c "! [ \"\$(redis-cli -p $main_PORT -n $DB exists r1)\" = 1 ]"

# -v: one timestamped line per event.
t "run -v" 0 "$D" run -v -n -l 300ms vb -- sleep 0.5
for ev in "acquiring lock 'vb' (lease 300ms, one try)" "acquired lock 'vb' after" \
    "started the command (pid" "renewed lock 'vb' (lease 300ms)" \
    "the command exited with status 0" "released lock 'vb' after holding it"; do
    err_has "run -v says: $ev" "$ev"
done
check "run -v lines start with a timestamp" \
    sh -c "grep -v -qE '^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{3}[+-][0-9]{4} dlock: ' '$TMP/err' && exit 1 || exit 0"
t "run without -v is silent" 0 "$D" run -n -l 300ms vb -- sleep 0.5
check "run without -v printed nothing" test ! -s "$TMP/err"
t "acquire -v --fencing" 0 "$D" acquire -v --fencing -l 5s vb
err_has "acquire -v names the fencing token" "fencing token $(sed -n 2p "$TMP/out"))"
t "release -v" 0 "$D" release -v vb "$(head -n 1 "$TMP/out")"
err_has "release -v says released" "released lock 'vb'"

# -w forever: waits with no limit (here until the holder's lease ends).
t "holder for -w forever" 0 "$D" acquire -l 1s wf
t "run -w forever waits for the lease to end" 0 timeout 10 "$D" run -w forever wf -- true
t "run -w bogus" 64 "$D" run -w forevr wf -- true
t "run: command not found" 127 "$D" run -n r1 -- /nonexistent/cmd
err_has "run: not found explained" "cannot run '/nonexistent/cmd'"
printf 'not a program\n' >"$TMP/noexec"
chmod 644 "$TMP/noexec"
t "run: command not executable" 126 "$D" run -n r1 -- "$TMP/noexec"
check "run released after exec failure" sh -c "! [ \"\$(redis-cli -p $main_PORT -n $DB exists r1)\" = 1 ]"
t "run: command's options are its own" 0 "$D" run -n r1 -- ls -l -d /
t "run: stdin and fds pass through" 0 sh -c "echo hi | '$D' run -n r1 -- sh -c 'read x && test \"\$x\" = hi && echo via3 >&3' 3>'$TMP/fd3'"
check "run: fd 3 reached the command" grep -q via3 "$TMP/fd3"

# Two runs at once exclude each other.
"$D" run -n ex -- sh -c "echo start >>'$TMP/ex'; sleep 1.5; echo end >>'$TMP/ex'" &
pid=$!
wait_for held ex
t "second run -n gets the conflict" 1 "$D" run -n ex -- sh -c "echo second >>'$TMP/ex'"
t "second run -E 9" 9 "$D" run -n -E 9 ex -- true
t "second run -w waits its turn" 0 "$D" run -w 10s ex -- sh -c "echo after >>'$TMP/ex'"
wait "$pid"
check "first run exit 0" test $? = 0
check "runs did not overlap" test "$(tr '\n' ' ' <"$TMP/ex")" = "start end after "

# A command that outlives its lease keeps the lock.
"$D" run -l 1s ol -- sleep 3 &
pid=$!
wait_for held ol
sleep 1.5
t "lease renewed at 1.5s: conflict" 1 "$D" run -n ol -- true
sleep 1
t "lease renewed at 2.5s: conflict" 1 "$D" run -n ol -- true
wait "$pid"
check "long command exit 0" test $? = 0
check "lock released after the long command" sh -c "! [ \"\$(redis-cli -p $main_PORT -n $DB exists ol)\" = 1 ]"

# SIGTERM to dlock run stops the child and releases the lock.
"$D" run st -- sh -c "echo \$\$ >'$TMP/st.pid'; exec sleep 30" &
pid=$!
wait_for test -s "$TMP/st.pid"
wait_for held st
kill -TERM "$pid"
wait "$pid"
rc=$?
check "SIGTERM: exit 143 (got $rc)" test "$rc" = 143
check "SIGTERM: child gone" sh -c "! kill -0 $(cat "$TMP/st.pid") 2>/dev/null"
check "SIGTERM: lock released" sh -c "! [ \"\$(redis-cli -p $main_PORT -n $DB exists st)\" = 1 ]"

# SIGKILL to dlock run: nobody renews the lease any more, so the command must not outlive dlock
# (the kernel sends it SIGKILL when dlock dies: PR_SET_PDEATHSIG). The lock stays until its lease
# ends, since nobody released it.
gone() { # gone PID: no such process, or only a zombie waiting to be reaped by init
    [ ! -e "/proc/$1" ] || grep -q '^[0-9]* ([^)]*) Z' "/proc/$1/stat" 2>/dev/null
}
gone_within_1s() { # gone_within_1s PID
    local i
    for i in $(seq 1 20); do
        gone "$1" && return 0
        sleep 0.05
    done
    return 1
}
rm -f "$TMP/pk.pid"
"$D" run -l 3s pk -- sh -c "echo \$\$ >'$TMP/pk.pid'; exec sleep 30" &
pid=$!
wait_for test -s "$TMP/pk.pid"
wait_for held pk
kill -KILL "$pid"
wait "$pid" 2>/dev/null
check "SIGKILL to run: the command is gone within 1 s" gone_within_1s "$(cat "$TMP/pk.pid")"
check "SIGKILL to run: the lock stays until its lease ends" held pk
kill -KILL "$(cat "$TMP/pk.pid")" 2>/dev/null # before the fix: do not leave it behind
rcli del pk >/dev/null
rm -f "$TMP/dk.pid"
"$D" debounce -w 100ms dk -- sh -c "echo \$\$ >'$TMP/dk.pid'; exec sleep 30" &
pid=$!
wait_for test -s "$TMP/dk.pid"
kill -KILL "$pid"
wait "$pid" 2>/dev/null
check "SIGKILL to debounce: the command is gone within 1 s" gone_within_1s "$(cat "$TMP/dk.pid")"
kill -KILL "$(cat "$TMP/dk.pid")" 2>/dev/null

# SIGINT and SIGHUP are passed on too; a child that handles them decides the status. (bash
# starts background commands with SIGINT ignored, which the command would inherit; env restores
# the default.)
env --default-signal=INT "$D" run si -- sh -c "trap 'exit 42' INT; echo \$\$ >'$TMP/si.pid'; while :; do sleep 0.05; done" &
pid=$!
wait_for test -s "$TMP/si.pid"
sleep 0.2
kill -INT "$pid"
wait "$pid"
rc=$?
check "SIGINT forwarded: child's status 42 (got $rc)" test "$rc" = 42
"$D" run sh1 -- sh -c "trap 'exit 43' HUP; echo \$\$ >'$TMP/hup.pid'; while :; do sleep 0.05; done" &
pid=$!
wait_for test -s "$TMP/hup.pid"
sleep 0.2
kill -HUP "$pid"
wait "$pid"
rc=$?
check "SIGHUP forwarded: child's status 43 (got $rc)" test "$rc" = 43

# Losing the lock signals the child and gives the lost exit code.
lost_case() { # lost_case NAME HOW [dlock run options...]
    local name=$1 how=$2 rc
    shift 2
    rm -f "$TMP/lost.pid" "$TMP/lost.term"
    "$D" run -l 1s "$@" lk -- sh -c "trap 'echo term >\"$TMP/lost.term\"; exit 5' TERM
        echo \$\$ >'$TMP/lost.pid'; while :; do sleep 0.05; done" 2>"$TMP/lost.err" &
    pid=$!
    wait_for test -s "$TMP/lost.pid"
    case $how in
    del) rcli del lk >/dev/null ;;
    set) rcli set lk someone-else >/dev/null ;;
    esac
    wait "$pid"
    LOST_RC=$?
    cat "$TMP/lost.err" >>"$ALL_OUTPUT"
}
lost_case "DEL" del
check "lost by DEL: exit 75 (got $LOST_RC)" test "$LOST_RC" = 75
check "lost by DEL: child got SIGTERM" test -s "$TMP/lost.term"
check "lost by DEL: message" grep -q "lost lock 'lk'" "$TMP/lost.err"
lost_case "SET" set --lost-exit-code 9
check "lost by SET: --lost-exit-code 9 (got $LOST_RC)" test "$LOST_RC" = 9
check "lost by SET: child got SIGTERM" test -s "$TMP/lost.term"
check "lost by SET: the other holder's value stays" test "$(rcli get lk)" = someone-else
rcli del lk >/dev/null

# A child that ignores SIGTERM is killed after --kill-grace.
start=$(date +%s%N)
"$D" run -l 1s --kill-grace 500ms kg -- sh -c "trap '' TERM; echo \$\$ >'$TMP/kg.pid'; while :; do sleep 0.05; done" 2>"$TMP/kg.err" &
pid=$!
wait_for test -s "$TMP/kg.pid"
rcli del kg >/dev/null
wait "$pid"
rc=$?
ms=$((($(date +%s%N) - start) / 1000000))
check "kill-grace: exit 75 (got $rc)" test "$rc" = 75
check "kill-grace: SIGKILL sent" grep -q "sending SIGKILL" "$TMP/kg.err"
check "kill-grace: child gone" sh -c "! kill -0 $(cat "$TMP/kg.pid") 2>/dev/null"
check "kill-grace: within 5s (${ms}ms)" test "$ms" -lt 5000
cat "$TMP/kg.err" >>"$ALL_OUTPUT"

# Redis becoming unreachable (a stopped server) also loses the lock once the lease runs out.
dl_redis_start "$TMP" victim || exit 2
victim_PORT=$DL_REDIS_PORT
"$D" run --url "redis://127.0.0.1:$victim_PORT" -l 1s --kill-grace 1s vk -- sleep 30 \
    2>"$TMP/vk.err" &
pid=$!
sleep 0.5
kill -STOP "$(cat "$TMP/victim.pid")"
start=$(date +%s%N)
wait "$pid"
rc=$?
ms=$((($(date +%s%N) - start) / 1000000))
kill -CONT "$(cat "$TMP/victim.pid")"
check "Redis unreachable mid-run: exit 75 (got $rc)" test "$rc" = 75
check "Redis unreachable mid-run: message" grep -q "could not be reached" "$TMP/vk.err"
check "Redis unreachable mid-run: within 8s (${ms}ms)" test "$ms" -lt 8000
cat "$TMP/vk.err" >>"$ALL_OUTPUT"

# --on-lost none lets the command finish but still reports the loss.
"$D" run -l 1s --on-lost none ln -- sh -c "sleep 1; echo finished >'$TMP/ln.out'" 2>>"$ALL_OUTPUT" &
pid=$!
wait_for held ln
rcli del ln >/dev/null
wait "$pid"
rc=$?
check "--on-lost none: exit 75 (got $rc)" test "$rc" = 75
check "--on-lost none: command finished" grep -q finished "$TMP/ln.out"

# Interrupting a wait gives 128+signal and leaves the holder alone.
t "holder for the wait test" 0 "$D" acquire -l 20s wt
wt_token=$(cat "$TMP/out")
"$D" run -w 10s wt -- true 2>"$TMP/wt.err" &
pid=$!
sleep 0.5
kill -TERM "$pid"
wait "$pid"
rc=$?
check "interrupted wait: exit 143 (got $rc)" test "$rc" = 143
check "interrupted wait: holder unchanged" test "$(rcli get wt)" = "$wt_token"
check "interrupted wait: message" grep -q "interrupted while waiting" "$TMP/wt.err"
cat "$TMP/wt.err" >>"$ALL_OUTPUT"
rcli del wt >/dev/null

# A waiter interrupted with SIGINT leaves the wait queue: when the holder releases, the lock goes
# to the next waiter at once, not to the dead entry (which would hold it for its lease).
within_1s() { # within_1s COND...: polls a condition for up to 1 s
    local i
    for i in $(seq 1 20); do
        "$@" && return 0
        sleep 0.05
    done
    "$@"
}
queue_len_is() { # queue_len_is ID N
    [ "$(rcli llen "{$1}:queue")" = "$2" ]
}
t "holder for the queue test" 0 "$D" acquire -l 30s wq
wq_token=$(cat "$TMP/out")
rm -f "$TMP/wq1.ran" "$TMP/wq2.ran"
env --default-signal=INT "$D" run -w 30s wq -- touch "$TMP/wq1.ran" 2>"$TMP/wq1.err" &
wq1=$!
wait_for queue_len_is wq 1
wq1_token=$(rcli lindex "{wq}:queue" 0)
"$D" run -w 30s wq -- touch "$TMP/wq2.ran" 2>"$TMP/wq2.err" &
wq2=$!
wait_for queue_len_is wq 2
kill -INT "$wq1"
wait "$wq1"
rc=$?
check "interrupted queued wait: exit 130 (got $rc)" test "$rc" = 130
check "interrupted queued wait: its token left {wq}:queue" \
    sh -c "! redis-cli -p $main_PORT -n $DB lrange '{wq}:queue' 0 -1 | grep -qxF '$wq1_token'"
check "interrupted queued wait: its entry left {wq}:waiters" \
    test "$(rcli hexists "{wq}:waiters" "$wq1_token")" = 0
check "interrupted queued wait: the other waiter is still queued" queue_len_is wq 1
t "holder releases to the queue" 0 "$D" release wq "$wq_token"
check "interrupted queued wait: the next waiter got the lock within 1 s" within_1s test -e "$TMP/wq2.ran"
wait "$wq2"
rc=$?
check "next waiter: exit 0 (got $rc)" test "$rc" = 0
check "interrupted queued wait: its command never ran" test ! -e "$TMP/wq1.ran"
cat "$TMP/wq1.err" "$TMP/wq2.err" >>"$ALL_OUTPUT"
rcli del wq >/dev/null
# The same for `dlock acquire -w`, and the interrupted call ends within 1 s.
t "holder for the acquire queue test" 0 "$D" acquire -l 30s wq
wq_token=$(cat "$TMP/out")
env --default-signal=INT "$D" acquire -w 30s wq >"$TMP/wqa.out" 2>>"$ALL_OUTPUT" &
wqa=$!
wait_for queue_len_is wq 1
kill -INT "$wqa"
check "interrupted acquire -w: ends within 1 s" within_1s gone "$wqa"
wait "$wqa"
rc=$?
check "interrupted acquire -w: exit 130 (got $rc)" test "$rc" = 130
check "interrupted acquire -w: printed no token" test ! -s "$TMP/wqa.out"
check "interrupted acquire -w: {wq}:queue is empty" queue_len_is wq 0
check "interrupted acquire -w: holder unchanged" test "$(rcli get wq)" = "$wq_token"
rcli del wq >/dev/null

# --- debounce ---------------------------------------------------------------------------------

t "debounce single call runs" 4 "$D" debounce -w 200ms db1 -- sh -c 'test "$DLOCK_ID" = db1 && exit 4'
rm -f "$TMP/db.runs"
pids=()
for i in 1 2 3 4 5; do
    "$D" debounce --wait 500ms db2 -- sh -c "echo $i >>'$TMP/db.runs'" &
    pids+=($!)
    sleep 0.05
done
rcs=""
for p in "${pids[@]}"; do
    wait "$p"
    rcs="$rcs$? "
done
check "debounce burst ran exactly once ($(wc -l <"$TMP/db.runs" 2>/dev/null || echo 0) runs)" test "$(wc -l <"$TMP/db.runs")" = 1
check "debounce burst: the last call ran" test "$(cat "$TMP/db.runs")" = 5
check "debounce burst: all exit 0 ($rcs)" test "$rcs" = "0 0 0 0 0 "
"$D" debounce -w 400ms -S 9 db3 -- true &
pid=$!
sleep 0.1
t "debounce later call runs" 0 "$D" debounce -w 400ms db3 -- true
wait "$pid"
rc=$?
check "debounce superseded -S 9 (got $rc)" test "$rc" = 9
t "debounce not found" 127 "$D" debounce -w 100ms db4 -- /nonexistent/cmd
t "debounce unreachable" 69 "$D" debounce --url "$DEAD_URL" db5 -- true

# --- credentials ------------------------------------------------------------------------------

printf '%s\n' "$PASSWORD" >"$TMP/pw"
printf 'wrong\n' >"$TMP/badpw"
t "auth: no password" 77 "$D" status --url "$AUTH_URL" a
err_has "auth: no password explained" "check the password"
t "auth: DLOCK_PASSWORD" 1 env DLOCK_PASSWORD="$PASSWORD" "$D" status --url "$AUTH_URL" a
t "auth: REDISCLI_AUTH" 1 env REDISCLI_AUTH="$PASSWORD" "$D" status --url "$AUTH_URL" a
t "auth: --password-file" 1 "$D" status --url "$AUTH_URL" --password-file "$TMP/pw" a
t "auth: wrong --password-file" 77 "$D" status --url "$AUTH_URL" --password-file "$TMP/badpw" a
t "auth: wrong DLOCK_PASSWORD" 77 env DLOCK_PASSWORD=wrong "$D" status --url "$AUTH_URL" a
t "auth: run with password" 0 env DLOCK_PASSWORD="$PASSWORD" "$D" run -n --url "$AUTH_URL" a -- true
t "auth: missing --password-file" 66 "$D" status --url "$AUTH_URL" --password-file "$TMP/nope" a
err_has "auth: missing file named" "cannot read --password-file"
: >"$TMP/empty"
t "auth: empty --password-file" 66 "$D" status --url "$AUTH_URL" --password-file "$TMP/empty" a
t "auth: a password in --url is refused" 64 "$D" status --url "redis://:$PASSWORD@127.0.0.1:$auth_PORT" a
err_has "auth: --url password refusal points to the safe ways" "--password-file FILE or DLOCK_PASSWORD"
t "auth: a sentinel URL's bare password in --url is refused" 64 "$D" status --url "redis-sentinel://$PASSWORD@127.0.0.1:1#m" a
t "auth: a sentinel URL's user:password in --url is refused" 64 "$D" status --url "redis-sentinel://u:$PASSWORD@127.0.0.1:1#m" a
t "auth: a user name alone in --url is no password (DLOCK_PASSWORD applies)" 1 \
    env DLOCK_PASSWORD="$PASSWORD" "$D" status --url "redis://default@127.0.0.1:$auth_PORT" a
t "auth: a password in REDIS_URL (not the command line) works" 1 \
    env REDIS_URL="redis://:$PASSWORD@127.0.0.1:$auth_PORT" "$D" status a
t "auth: wrong password in REDIS_URL" 77 env REDIS_URL="redis://:wrong$PASSWORD@127.0.0.1:$auth_PORT" "$D" status a
# The command run by dlock does not inherit the secrets dlock read.
t "secrets: run scrubs them from the command's environment" 0 \
    env DLOCK_PASSWORD="$PASSWORD" REDISCLI_AUTH="$PASSWORD" UPSTASH_REDIS_REST_TOKEN="$REST_TOKEN" \
    "$D" run -n --url "$AUTH_URL" sec -- sh -c 'echo "${DLOCK_PASSWORD-unset} ${REDISCLI_AUTH-unset} ${UPSTASH_REDIS_REST_TOKEN-unset}"'
out_has "secrets: none reached the command" "unset unset unset"
t "secrets: debounce scrubs them too" 0 \
    env DLOCK_PASSWORD="$PASSWORD" REDISCLI_AUTH="$PASSWORD" \
    "$D" debounce -w 100ms --url "$AUTH_URL" secd -- sh -c 'echo "${DLOCK_PASSWORD-unset} ${REDISCLI_AUTH-unset}"'
out_has "secrets: none reached the debounced command" "unset unset"
t "--cacert missing" 66 "$D" status --cacert "$TMP/nope.pem" x
err_has "--cacert missing named" "cannot read --cacert"
t "--token-file missing" 66 "$D" status --token-file "$TMP/nope" x
# A REST URL that nobody serves: unreachable (or, in a build without REST, a usage error); the
# token must not show either way.
t "rest: unreachable" 69 env UPSTASH_REDIS_REST_URL="http://127.0.0.1:$(dl_free_port)" \
    UPSTASH_REDIS_REST_TOKEN="$REST_TOKEN" "$D" status x
if grep -q "not available in this build" "$TMP/err"; then
    FAILED=$((FAILED - 1)) # the t above; REST is optional at build time
    echo "skip rest: not in this build"
fi

check "the password never appears in any output" sh -c "! grep -qF -- '$PASSWORD' '$ALL_OUTPUT'"
check "the REST token never appears in any output" sh -c "! grep -qF -- '$REST_TOKEN' '$ALL_OUTPUT'"

echo "$PASSED passed, $FAILED failed"
[ "$FAILED" -eq 0 ]
