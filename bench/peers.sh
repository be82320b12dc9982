#!/usr/bin/env bash
# bench/peers.sh BUILD: `make bench-peers`. The same acquire+release cycle on one id, one client,
# with the locks a user would otherwise pick, on one private redis-server:
#   dlock             (this library; Redis protocol over TCP, and REST through the gateway)
#   redlock           npm redlock 4 with ioredis (single instance)
#   redis-py Lock     Debian's python3-redis
#   @upstash/lock     with @upstash/redis, through the local Upstash REST gateway (tests/gateway)
# and, over five private redis-servers (tests/harness/quorum-env.sh, as bench/quorum.sh starts
# them), dlock's Redlock (BUILD/bench/dlock_bench_quorum) next to npm redlock 5 (node-redlock's
# v5 line, installed as the alias redlock5) with ioredis.
# npm packages go into BUILD/bench-peers (never the repository). A peer whose registry cannot be
# reached, or whose gateway is not built, is reported as skipped. Prints a side-by-side table and
# writes BUILD/bench-results/peers.json. BENCH_SECONDS (default 3) per peer.
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(dirname "$HERE")
BUILD=$(realpath -m "${1:-build}")
OUT=$(realpath -m "${BENCH_OUT:-$BUILD/bench-results}")
SECS=${BENCH_SECONDS:-3}
PEERDIR=$BUILD/bench-peers
[ -f "$BUILD/libdlock.a" ] || {
    echo "bench-peers: $BUILD/libdlock.a not found; run 'make' first" >&2
    exit 1
}
# shellcheck source=bench/common.sh
. "$HERE/common.sh"
BIN=$(bench_binary "$BUILD" "$ROOT")
mkdir -p "$OUT" "$PEERDIR"
command -v jq >/dev/null || {
    echo "bench-peers: jq not found (apt-get install jq)" >&2
    exit 1
}

bench_start_redis
bench_start_gateway "$BUILD"

ROWS=()   # name|transport|version|json-or-skip-reason
add_row() { ROWS+=("$1|$2|$3|$4"); }

# dlock, from dlock_bench's cycle mode: the acquire+release row for the given URL.
dlock_row() {
    local url=$1 name=$2 json=$BENCH_TMP/dlock-$RANDOM.json extra=()
    [ "${url#http}" = "$url" ] || extra=(--rest-token "$GATEWAY_TOKEN")
    if "${CLIENT_PIN[@]}" "$BIN" --modes cycle --url "$url" "${extra[@]}" --seconds "$SECS" --json "$json" \
        --out "$BENCH_TMP" >/dev/null 2>"$BENCH_TMP/dlock.err"; then
        add_row "$name" "$(tr_of "$url")" "$(jq -r .meta.dlock_version "$json")" \
            "$(jq -c '[.results[] | select(.mode=="cycle" and .impl=="dlock" and
                  .op=="acquire+release")][0]' "$json")"
    else
        add_row "$name" "$(tr_of "$url")" "" "skipped: $(tail -n 1 "$BENCH_TMP/dlock.err")"
    fi
}
tr_of() {
    case $1 in
    unix:*) echo unix ;;
    http*) echo "REST" ;;
    *) echo tcp ;;
    esac
}

echo "bench-peers: redis-server on port $REDIS_PORT; $SECS s per peer; $(nproc) CPUs;" \
    "load $(cut -d' ' -f1-3 /proc/loadavg)" >&2
dlock_row "redis://127.0.0.1:$REDIS_PORT" "dlock"

# npm peers: install once into BUILD/bench-peers.
REDLOCK5=5.0.0-beta.2
NPM_OK=0
if command -v npm >/dev/null && command -v node >/dev/null; then
    # redlock 5 has only pre-releases (5.0.0-beta.2 is the v5 line's), so it is pinned, and
    # aliased so that it sits beside redlock 4.
    if [ -d "$PEERDIR/node_modules/redlock" ] && [ -d "$PEERDIR/node_modules/@upstash/lock" ] &&
        [ -d "$PEERDIR/node_modules/redlock5" ]; then
        NPM_OK=1
    else
        echo "bench-peers: npm install redlock@4 redlock5@npm:redlock@$REDLOCK5 ioredis" \
            "@upstash/lock @upstash/redis into $PEERDIR" >&2
        [ -f "$PEERDIR/package.json" ] || echo '{"private": true}' >"$PEERDIR/package.json"
        if (cd "$PEERDIR" && timeout 300 npm install --no-audit --no-fund --silent \
            redlock@4 "redlock5@npm:redlock@$REDLOCK5" ioredis @upstash/lock @upstash/redis) \
            >"$BENCH_TMP/npm.log" 2>&1; then
            NPM_OK=1
        fi
    fi
    cp "$HERE"/peers/*.cjs "$PEERDIR"/
fi
npm_version() { jq -r .version "$PEERDIR/node_modules/$1/package.json" 2>/dev/null | sed 's/^v//'; }

if [ "$NPM_OK" = 1 ]; then
    if out=$(cd "$PEERDIR" && timeout 60 "${CLIENT_PIN[@]}" node redlock.cjs "$REDIS_PORT" "$SECS" 2>&1); then
        add_row "redlock + ioredis" tcp "$(npm_version redlock) / $(npm_version ioredis)" "$out"
    else
        add_row "redlock + ioredis" tcp "" "skipped: $(echo "$out" | tail -n 1)"
    fi
else
    add_row "redlock + ioredis" tcp "" "skipped: npm registry unreachable or npm missing"
fi

# Debian's python3-redis, for Debian's own python3 (not a pyenv one on PATH).
PY=/usr/bin/python3
if ! "$PY" -c 'import redis' 2>/dev/null; then
    echo "bench-peers: apt-get install -y python3-redis" >&2
    if [ "$(id -u)" = 0 ]; then
        timeout 300 apt-get install -y python3-redis >"$BENCH_TMP/apt.log" 2>&1 || true
    else
        timeout 300 sudo -n apt-get install -y python3-redis >"$BENCH_TMP/apt.log" 2>&1 || true
    fi
fi
if "$PY" -c 'import redis' 2>/dev/null; then
    if out=$(timeout 60 "${CLIENT_PIN[@]}" "$PY" "$HERE/peers/redis_py.py" "$REDIS_PORT" "$SECS" 2>&1); then
        add_row "redis-py Lock" tcp "$(echo "$out" | jq -r .version)" "$out"
    else
        add_row "redis-py Lock" tcp "" "skipped: $(echo "$out" | tail -n 1)"
    fi
else
    add_row "redis-py Lock" tcp "" "skipped: python3-redis not installable (Debian mirror?)"
fi

# The REST side: dlock and @upstash/lock through the same local gateway.
if [ -n "$GATEWAY_URL" ]; then
    dlock_row "$GATEWAY_URL" "dlock"
    if [ "$NPM_OK" = 1 ]; then
        if out=$(cd "$PEERDIR" && timeout 60 "${CLIENT_PIN[@]}" node upstash.cjs "$GATEWAY_URL" "$GATEWAY_TOKEN" \
            "$SECS" 2>&1); then
            add_row "@upstash/lock" REST \
                "$(npm_version @upstash/lock) / redis $(npm_version @upstash/redis)" "$out"
        else
            add_row "@upstash/lock" REST "" "skipped: $(echo "$out" | tail -n 1)"
        fi
    else
        add_row "@upstash/lock" REST "" "skipped: npm registry unreachable or npm missing"
    fi
else
    add_row "dlock" REST "" "skipped: dlock_rest_gateway not built in $BUILD"
    add_row "@upstash/lock" REST "" "skipped: dlock_rest_gateway not built in $BUILD"
fi

# Redlock over five servers: dlock's (dlock_bench_quorum, which also measures the raw hiredis
# parallel fan-out, its limit) and node-redlock 5's, on the same servers one after the other.
# The servers run with appendfsync everysec like bench/quorum.sh's: the disk is not measured.
QPORTS=()
if DLOCK_QUORUM_FSYNC=everysec timeout 60 "${SERVER_PIN[@]}" bash "$BENCH_HARNESS/quorum-env.sh" \
    start "$BENCH_TMP/quorum" >"$BENCH_TMP/quorum.log" 2>&1; then
    for i in 1 2 3 4 5; do
        QPORTS+=("$(sed -n "s/^DLOCK_Q${i}_PORT=//p" "$BENCH_TMP/quorum/env")")
    done
    echo "bench-peers: 5 Redlock servers on ports ${QPORTS[*]}" >&2
fi
QBIN=$BUILD/bench/dlock_bench_quorum
if [ ${#QPORTS[@]} -ne 5 ]; then
    add_row "dlock Redlock" N=5 "" \
        "skipped: the 5 servers did not start: $(tail -n 1 "$BENCH_TMP/quorum.log")"
elif [ ! -x "$QBIN" ]; then
    add_row "dlock Redlock" N=5 "" "skipped: $QBIN not built"
elif out=$(timeout 120 "${CLIENT_PIN[@]}" "$QBIN" "$SECS" "${QPORTS[@]}" 2>&1) &&
    q=$(echo "$out" | tail -n 1 | jq -ce 'select(.dlock.ops > 0)' 2>/dev/null); then
    ver=$(echo "${ROWS[0]}" | cut -d'|' -f3)
    add_row "dlock Redlock" N=5 "$ver" \
        "$(echo "$q" | jq -c '.dlock | {ops_per_s: .ops, p50_us, p99_us}')"
    add_row "raw hiredis fan-out" N=5 "limit" \
        "$(echo "$q" | jq -c '.raw_parallel | {ops_per_s: .ops, p50_us, p99_us}')"
else
    add_row "dlock Redlock" N=5 "" "skipped: $(echo "$out" | tail -n 1)"
fi
if [ ${#QPORTS[@]} -ne 5 ]; then
    add_row "redlock 5 + ioredis" N=5 "" "skipped: the 5 servers did not start"
elif [ "$NPM_OK" = 1 ]; then
    if out=$(cd "$PEERDIR" && timeout 60 "${CLIENT_PIN[@]}" node redlock5_quorum.cjs "$SECS" \
        "${QPORTS[@]}" 2>&1); then
        add_row "redlock 5 + ioredis" N=5 "$(npm_version redlock5) / $(npm_version ioredis)" "$out"
    else
        add_row "redlock 5 + ioredis" N=5 "" "skipped: $(echo "$out" | tail -n 1)"
    fi
else
    add_row "redlock 5 + ioredis" N=5 "" "skipped: npm registry unreachable or npm missing"
fi

# The table, and the JSON.
DLOCK_TCP=$(echo "${ROWS[0]}" | cut -d'|' -f4- | jq -r '.ops_per_s // 0' 2>/dev/null || echo 0)
DLOCK_REST=0
DLOCK_Q=0
for row in "${ROWS[@]}"; do
    IFS='|' read -r name tr ver data <<<"$row"
    if [ "$name" = dlock ] && [ "$tr" = REST ] && [ "${data#skipped}" = "$data" ]; then
        DLOCK_REST=$(echo "$data" | jq -r .ops_per_s)
    fi
    if [ "$name" = "dlock Redlock" ] && [ "${data#skipped}" = "$data" ]; then
        DLOCK_Q=$(echo "$data" | jq -r .ops_per_s)
    fi
done
printf '\nacquire+release cycle, one client, one id, %s s each (%s CPUs, load %s)\n' "$SECS" \
    "$(nproc)" "$(cut -d' ' -f1-3 /proc/loadavg)"
printf '%-20s %-5s %-22s %10s %9s %9s %9s  %s\n' peer tr version ops/s "p50 us" "p99 us" \
    "p99.9 us" "dlock is"
JSON="["
for row in "${ROWS[@]}"; do
    IFS='|' read -r name tr ver data <<<"$row"
    if [ "${data#skipped}" != "$data" ]; then
        printf '%-20s %-5s %-22s %s\n' "$name" "$tr" "-" "$data"
        JSON+=$(jq -cn --arg n "$name" --arg t "$tr" --arg r "$data" \
            '{peer: $n, transport: $t, skipped: $r}'),
        continue
    fi
    base=$DLOCK_TCP
    [ "$tr" != REST ] || base=$DLOCK_REST
    [ "$tr" != N=5 ] || base=$DLOCK_Q
    read -r ops p50 p99 p999 <<<"$(echo "$data" | jq -r '"\(.ops_per_s) \(.p50_us) \(.p99_us) \(.p999_us)"')"
    vs=$(awk -v a="$base" -v b="$ops" 'BEGIN { if (b > 0 && a > 0) printf "%.2fx", a / b }')
    [ "$name" != dlock ] && [ "$name" != "dlock Redlock" ] || vs=
    [ "$p999" = null ] || p999=$(printf '%.1f' "$p999") # dlock_bench_quorum has no p99.9
    [ "$p999" != null ] || p999=-
    printf '%-20s %-5s %-22s %10.0f %9.1f %9.1f %9s  %s\n' "$name" "$tr" "$ver" "$ops" "$p50" \
        "$p99" "$p999" "$vs"
    JSON+=$(echo "$data" | jq -c --arg n "$name" --arg t "$tr" --arg v "$ver" \
        '{peer: $n, transport: $t, version: $v, ops_per_s, p50_us, p99_us, p999_us, samples}'),
done
JSON="${JSON%,}]"
echo "$JSON" | jq . >"$OUT/peers.json"
echo "(\"dlock is\" = dlock ops/s / the peer's ops/s on the same transport; N=5: Redlock over" \
    "five servers, dlock's Redlock against the others)"
echo "bench-peers: JSON $OUT/peers.json" >&2
