#!/usr/bin/env bash
# quorum_cli_test.sh: the `dlock` command over a Redlock of five servers.
#
#   tests/cli/quorum_cli_test.sh PATH/TO/dlock PATH/TO/quorum-env.sh
#
# Starts five private servers with tests/harness/quorum-env.sh in a temp dir, stops them by PID
# at exit, and prints "N passed, N failed" as its last line; exits 1 on any failure.
set -u

DLOCK=${1:?usage: quorum_cli_test.sh PATH/TO/dlock PATH/TO/quorum-env.sh}
HARNESS=${2:?usage: quorum_cli_test.sh PATH/TO/dlock PATH/TO/quorum-env.sh}
TMP=$(mktemp -d /tmp/dlock-quorum-cli.XXXXXX)
PASSED=0
FAILED=0

cleanup() {
    bash "$HARNESS" stop "$TMP/env" >/dev/null 2>&1
    rm -rf "$TMP"
}
trap cleanup EXIT

bash "$HARNESS" start "$TMP/env" >/dev/null || {
    echo "quorum_cli_test.sh: the servers did not start" >&2
    exit 2
}
# shellcheck disable=SC1091
. "$TMP/env/env"
unset REDIS_URL UPSTASH_REDIS_REST_URL DLOCK_URLS
URLS=()
for i in 1 2 3 4 5; do
    v=DLOCK_Q${i}_URL
    URLS+=(--url "${!v}")
done

check() { # check NAME COMMAND...: passes if COMMAND succeeds
    local name=$1
    shift
    if "$@"; then
        PASSED=$((PASSED + 1))
    else
        FAILED=$((FAILED + 1))
        echo "FAIL: $name" >&2
    fi
}

rcli() { # rcli I ARGS...: redis-cli on server I
    local v=DLOCK_Q${1}_PORT
    shift
    redis-cli -p "${!v}" "$@"
}

holding() { # holding ID TOKEN: how many servers hold ID with TOKEN
    local n=0 i
    for i in 1 2 3 4 5; do
        [ "$(rcli "$i" get "$1" 2>/dev/null)" = "$2" ] && n=$((n + 1))
    done
    echo "$n"
}

# acquire / status / release over five servers
token=$("$DLOCK" "${URLS[@]}" acquire -l 30s qa 2>"$TMP/err")
check "acquire over 5 servers (got '$token': $(cat "$TMP/err"))" test -n "$token"
check "the key is on all 5 servers" test "$(holding qa "$token")" = 5
"$DLOCK" "${URLS[@]}" status qa >/dev/null 2>&1
check "status: held (exit 0)" test $? = 0
"$DLOCK" "${URLS[@]}" acquire -n qa >/dev/null 2>&1
check "second acquire: held by another (exit 1)" test $? = 1
"$DLOCK" "${URLS[@]}" release qa "$token" 2>/dev/null
check "release: exit 0" test $? = 0
check "release: no key left" test "$(holding qa "$token")" = 0

# DLOCK_URLS, separated by blanks
list="$DLOCK_Q1_URL $DLOCK_Q2_URL $DLOCK_Q3_URL  $DLOCK_Q4_URL"$'\t'"$DLOCK_Q5_URL"
token=$(DLOCK_URLS=$list "$DLOCK" acquire qe 2>/dev/null)
check "DLOCK_URLS: acquire" test "$(holding qe "$token")" = 5
DLOCK_URLS=$list "$DLOCK" release qe "$token" 2>/dev/null
check "DLOCK_URLS: release" test "$(holding qe "$token")" = 0

# Two servers are refused (no server may fail there); so is debounce.
"$DLOCK" --url "$DLOCK_Q1_URL" --url "$DLOCK_Q2_URL" acquire q2 >/dev/null 2>"$TMP/err"
rc=$?
check "two --url: exit 64 (got $rc)" test "$rc" = 64
check "two --url: says why" grep -q "3 to" "$TMP/err"
"$DLOCK" "${URLS[@]}" debounce --wait 100ms qd -- true >/dev/null 2>"$TMP/err"
rc=$?
check "debounce over a Redlock: exit 64 (got $rc)" test "$rc" = 64

# Two servers down: still a majority.
bash "$HARNESS" kill "$TMP/env" 1
bash "$HARNESS" pause "$TMP/env" 2
"$DLOCK" "${URLS[@]}" run -l 1s qr -- true 2>"$TMP/err"
check "run with 2 of 5 down: exit 0 ($(cat "$TMP/err"))" test $? = 0

# Losing the majority while the command runs: exit 75, the command gets SIGTERM.
rm -f "$TMP/lost.pid" "$TMP/lost.term"
"$DLOCK" "${URLS[@]}" run -l 1s ql -- sh -c "trap 'echo term >\"$TMP/lost.term\"; exit 5' TERM
    echo \$\$ >'$TMP/lost.pid'; while :; do sleep 0.05; done" 2>"$TMP/lost.err" &
runner=$!
for _ in $(seq 1 100); do
    [ -s "$TMP/lost.pid" ] && break
    sleep 0.05
done
bash "$HARNESS" kill "$TMP/env" 3 # three of five down
start=$(date +%s%N)
wait "$runner"
rc=$?
took=$((($(date +%s%N) - start) / 1000000))
check "majority lost during run: exit 75 (got $rc: $(cat "$TMP/lost.err"))" test "$rc" = 75
check "majority lost during run: the command got SIGTERM" test -s "$TMP/lost.term"
check "majority lost during run: within 3 s (took $took ms)" test "$took" -lt 3000
check "majority lost during run: message" grep -q "lost lock 'ql'" "$TMP/lost.err"
bash "$HARNESS" resume "$TMP/env" 2

echo "$PASSED passed, $FAILED failed"
[ "$FAILED" -eq 0 ]
