#!/usr/bin/env bash
# run.sh ENV_DIR WORK_DIR GATEWAY DRIVER: dlock (C) against the real npm @upstash/lock and
# @upstash/redis (versions pinned in package.json / package-lock.json), on one local REST gateway
# in front of the fixture's redis-server.
#   (a) a JS Lock holds an id: dlock gets NOT_ACQUIRED and inspect shows the JS holder; and the
#       other way round; after each release the other side can acquire.
#   (b) one debounce id shared by a C dlock_debounce_call_sync and a JS instance following the
#       seed's algorithm: the callback runs once in total, whichever side calls last.
# Exit 0 = passed, 77 = SKIPPED (node/npm missing or the npm registry unreachable), else failed.
set -uo pipefail

ENV_DIR=$1 WORK=$2 GATEWAY=$3 DRIVER=$4
HERE=$(cd "$(dirname "$0")" && pwd)
TOKEN="interop-$RANDOM$RANDOM-token"

skip() {
    echo "SKIPPED: $*"
    exit 77
}
fail() {
    echo "FAILED: $*"
    exit 1
}

command -v node >/dev/null || skip "node is not installed"
command -v npm >/dev/null || skip "npm is not installed"
[ -f "$ENV_DIR/env" ] || fail "$ENV_DIR/env missing (the redis fixture did not run)"
# shellcheck disable=SC1091
. "$ENV_DIR/env"

mkdir -p "$WORK"
cp "$HERE/package.json" "$HERE/package-lock.json" "$HERE/interop.mjs" "$WORK/"
# Install once per build directory; reinstall only when the lock file changed.
if ! cmp -s "$HERE/package-lock.json" "$WORK/node_modules/.dlock-installed" 2>/dev/null; then
    if ! (cd "$WORK" && timeout 240 npm ci --omit=peer --no-audit --no-fund --fetch-retries=1 --fetch-timeout=30000 >npm.log 2>&1); then
        if ! (cd "$WORK" && timeout 30 npm ping >/dev/null 2>&1); then
            skip "the npm registry cannot be reached (npm ci failed; see $WORK/npm.log)"
        fi
        cat "$WORK/npm.log"
        fail "npm ci failed although the registry answers"
    fi
    cp "$HERE/package-lock.json" "$WORK/node_modules/.dlock-installed"
fi

rm -f "$WORK/gw.port"
"$GATEWAY" --redis "127.0.0.1:$DLOCK_TEST_PORT" --token "$TOKEN" --port 0 \
    --port-file "$WORK/gw.port" --log "$WORK/gw.log" >/dev/null &
GW=$!
trap 'kill $GW 2>/dev/null; wait $GW 2>/dev/null' EXIT
for _ in $(seq 1 200); do
    [ -s "$WORK/gw.port" ] && break
    sleep 0.05
done
[ -s "$WORK/gw.port" ] || fail "the gateway did not start"
URL="http://127.0.0.1:$(cat "$WORK/gw.port")"
export UPSTASH_REDIS_REST_URL=$URL UPSTASH_REDIS_REST_TOKEN=$TOKEN UPSTASH_DISABLE_TELEMETRY=1
ID="dlock-interop:$$:$RANDOM"
passed=0

# wait_line FILE WORD: until FILE has a line starting with WORD (10 s).
wait_line() {
    for _ in $(seq 1 200); do
        grep -q "^$2" "$1" 2>/dev/null && return 0
        sleep 0.05
    done
    return 1
}

# run SIDE CMD ID [ARGS...]: one invocation of the C driver or the node script.
run() {
    local side=$1 cmd=$2
    shift 2
    if [ "$side" = C ]; then
        "$DRIVER" "$cmd" "$URL" "$@"
    else
        node "$WORK/interop.mjs" "$cmd" "$@"
    fi
}

# hold_vs_try HOLDER OTHER: HOLDER holds an id for 3 s; OTHER must be refused meanwhile (and,
# for C, see the holder's token with dlock_lock_inspect), then acquire after the release.
hold_vs_try() {
    local holder=$1 other=$2 id="$ID:held-by-$1" out="$WORK/hold.$1.out" res rc token hp
    rm -f "$out"
    run "$holder" hold "$id" 3000 >"$out" 2>&1 &
    hp=$!
    wait_line "$out" HELD || fail "$holder did not acquire $id: $(cat "$out")"
    token=$(awk '/^HELD/ {print $2}' "$out")
    res=$(run "$other" try "$id" 2>&1)
    rc=$?
    [ $rc -eq 1 ] || fail "$other acquired $id while $holder held it (exit $rc): $res"
    if [ "$other" = C ]; then
        case $res in
        "NOT_ACQUIRED held=1 holder=$token remaining="*) ;;
        *) fail "dlock_lock_inspect does not show the holder's token $token: $res" ;;
        esac
    fi
    wait $hp || fail "$holder failed: $(cat "$out")"
    grep -q '^RELEASED' "$out" || fail "$holder did not release: $(cat "$out")"
    res=$(run "$other" try "$id" 2>&1)
    rc=$?
    [ $rc -eq 0 ] || fail "$other could not acquire $id after $holder released it: $res"
    echo "ok: $holder holds $id ($token); $other is refused, then acquires"
    passed=$((passed + 1))
}
hold_vs_try JS C
hold_vs_try C JS

# (b) debounce: FIRST calls, SECOND calls soon after, within the 1500 ms wait; only SECOND's
# callback may run, exactly once in total.
debounce_pair() {
    local first=$1 second=$2 id="$ID:debounce:$1" out="$WORK/debounce.$1.out" p1 p2 r1 r2
    rm -f "$out"
    run "$first" debounce "$id" 1500 first "$out" &
    p1=$!
    # Start the second only once the first has counted (its INCR made the key), so the order
    # does not depend on how fast node starts.
    for _ in $(seq 1 200); do
        [ "$(redis-cli -h 127.0.0.1 -p "$DLOCK_TEST_PORT" exists "$id")" = 1 ] && break
        sleep 0.02
    done
    sleep 0.1
    run "$second" debounce "$id" 1500 second "$out" &
    p2=$!
    wait $p1
    r1=$?
    wait $p2
    r2=$?
    [ $r1 -eq 3 ] || fail "debounce: the first call ($first) was not superseded (exit $r1)"
    [ $r2 -eq 0 ] || fail "debounce: the last call ($second) did not run (exit $r2)"
    [ "$(cat "$out" 2>/dev/null)" = "$second:second" ] ||
        fail "debounce $first then $second: expected one callback '$second:second', got: $(cat "$out" 2>/dev/null)"
    echo "ok: debounce $first then $second: the callback ran once, on $second"
    passed=$((passed + 1))
}
debounce_pair C JS
debounce_pair JS C

echo "$passed passed, 0 failed"
