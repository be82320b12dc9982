#!/usr/bin/env bash
# demo.sh: shows the `dlock` command at work, on a timeline, and checks the outcome.
#
#   demo/demo.sh BUILD_DIR            uses BUILD_DIR/tools/dlock   (what `make demo` runs)
#   demo/demo.sh --dlock PATH         uses the binary at PATH
#   options: --url URL                use this server (default: $REDIS_URL, else a private
#                                     redis-server on a free port, stopped at exit)
#
# 1. Five workers race for one job with `dlock run -n`: exactly one runs it.
# 2. A burst of triggers from eight processes goes through `dlock debounce`: one run.
# 3. A job that outlives its lease keeps the lock, because `dlock run` renews it.
# Exits 0 if every outcome is right, 1 if not, 2 if the demo cannot start.
set -u

DLOCK=
URL=${REDIS_URL:-}
while [ $# -gt 0 ]; do
    case $1 in
    --dlock)
        DLOCK=$2
        shift 2
        ;;
    --url)
        URL=$2
        shift 2
        ;;
    -h | --help)
        sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//'
        exit 0
        ;;
    *)
        DLOCK=$1/tools/dlock
        shift
        ;;
    esac
done
DLOCK=${DLOCK:-build/tools/dlock}
if [ ! -x "$DLOCK" ]; then
    echo "demo.sh: $DLOCK not found; build first (make) or pass the build directory" >&2
    exit 2
fi
DLOCK=$(cd "$(dirname "$DLOCK")" && pwd)/$(basename "$DLOCK")

# shellcheck source=../tests/harness/redis-lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/../tests/harness/redis-lib.sh"
TMP=$(mktemp -d /tmp/dlock-demo.XXXXXX)
cleanup() {
    # Stop only the server this script started, by its PID file (dl_redis_stop checks it is one).
    dl_redis_stop "$TMP/redis.pid"
    rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

START=$(date +%s%N)
export START
# A timeline line: seconds since the start, then the text. A script file rather than only a
# function, so that the commands dlock runs can write to the timeline too.
cat >"$TMP/say" <<'EOF2'
#!/bin/sh
now=$(($(date +%s%N) - START))
printf '[+%d.%03ds] %s\n' $((now / 1000000000)) $((now / 1000000 % 1000)) "$*"
EOF2
chmod +x "$TMP/say"
say() {
    "$TMP/say" "$@"
}

if [ -z "$URL" ]; then
    command -v redis-server >/dev/null || {
        echo "demo.sh: redis-server not found (apt-get install redis-server), or set REDIS_URL" >&2
        exit 2
    }
    dl_redis_start "$TMP" redis || exit 2
    URL=redis://127.0.0.1:$DL_REDIS_PORT
    say "started a private redis-server at $URL (pid $DL_REDIS_PID)"
else
    say "using the Redis server from ${REDIS_URL:+REDIS_URL}${REDIS_URL:---url}"
fi
export REDIS_URL=$URL
# Keys unique to this run, so a shared server's other users are not disturbed.
NS="dlock-demo:$$:$RANDOM"
FAILED=0
verdict() { # verdict OK? TEXT
    if [ "$1" = 1 ]; then
        say "$2: OK"
    else
        say "$2: WRONG"
        FAILED=1
    fi
}

# --- 1. one job, five workers -----------------------------------------------------------------
echo
say "1. five workers race to run one job: dlock run -n $NS:job -- sh -c '...'"
for w in 1 2 3 4 5; do
    (
        "$DLOCK" run -n "$NS:job" -- sh -c "'$TMP/say' 'worker $w: got the lock, running the job (1s)'; sleep 1" \
            2>"$TMP/w$w.err"
        echo $? >"$TMP/w$w.rc"
        if [ "$(cat "$TMP/w$w.rc")" = 0 ]; then
            say "worker $w: job done, lock released"
        else
            say "worker $w: exit $(cat "$TMP/w$w.rc"): $(sed 's/^dlock: //' "$TMP/w$w.err")"
        fi
    ) &
done
wait
ran=0
conflicts=0
for w in 1 2 3 4 5; do
    case $(cat "$TMP/w$w.rc") in
    0) ran=$((ran + 1)) ;;
    1) conflicts=$((conflicts + 1)) ;;
    esac
done
verdict $([ $ran = 1 ] && [ $conflicts = 4 ] && echo 1) \
    "exactly $ran of 5 workers ran the job, $conflicts got the conflict (exit 1)"

# --- 2. a burst of triggers, debounced ----------------------------------------------------------
echo
say "2. eight processes trigger a rebuild 100ms apart: dlock debounce --wait 500ms $NS:rebuild"
: >"$TMP/runs"
for t in 1 2 3 4 5 6 7 8; do
    (
        "$DLOCK" debounce --wait 500ms -S 3 "$NS:rebuild" -- \
            sh -c "echo $t >>'$TMP/runs'" 2>"$TMP/t$t.err"
        rc=$?
        echo $rc >"$TMP/t$t.rc"
        if [ $rc = 0 ]; then
            say "trigger $t: no trigger came within 500ms after it: ran the rebuild"
        elif [ $rc = 3 ]; then
            say "trigger $t: superseded by a later trigger"
        else
            say "trigger $t: exit $rc: $(cat "$TMP/t$t.err")"
        fi
    ) &
    say "trigger $t sent"
    sleep 0.1
done
wait
runs=$(wc -l <"$TMP/runs")
verdict $([ "$runs" = 1 ] && [ "$(cat "$TMP/runs")" = 8 ] && echo 1) \
    "8 triggers were debounced into $runs run (by the last trigger, $(cat "$TMP/runs"))"

# --- 3. a job longer than its lease -------------------------------------------------------------
echo
say "3. a 2.5s job with a 1s lease: dlock run -l 1s $NS:long -- sleep 2.5"
"$DLOCK" run -l 1s "$NS:long" -- sleep 2.5 &
long=$!
sleep 1.8
"$DLOCK" run -n -q "$NS:long" -- true
rc=$?
say "at +1.8s, after the first lease would have ended, another run -n exits $rc"
wait $long
long_rc=$?
say "the long job finished (exit $long_rc) and released the lock"
"$DLOCK" status -q "$NS:long" >/dev/null
free_rc=$?
verdict $([ $rc = 1 ] && [ $long_rc = 0 ] && [ $free_rc = 1 ] && echo 1) \
    "the lease was renewed while the job ran, and the lock is free after it"

echo
if [ $FAILED = 0 ]; then
    say "all outcomes as expected"
else
    say "some outcomes were WRONG"
fi
exit $FAILED
