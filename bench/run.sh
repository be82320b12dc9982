#!/usr/bin/env bash
# bench/run.sh BUILD: `make bench`. Runs dlock_bench against a private redis-server over TCP and a
# unix socket (and the REST gateway when tests/gateway has been built), and through a Redis
# Cluster's seed URL (tests/harness/cluster-env.sh), next to raw hiredis and redis-benchmark, then
# the Redlock benchmark over five more servers (bench/quorum.sh), then plots the latency curves.
# Bounded: about 3.5 minutes with the defaults.
#
# Environment: BENCH_SECONDS (per measurement, default 2), BENCH_WORKERS (default 16),
# BENCH_KEYS (default 1,1000,100000,1000000), BENCH_MODES (default all), BENCH_QUORUM (0 skips
# the Redlock benchmark), BENCH_OUT (default BUILD/bench-results). Output: a table on stdout,
# BENCH_OUT/results.json, BENCH_OUT/results.txt, BENCH_OUT/latency.png.
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(dirname "$HERE")
BUILD=$(realpath -m "${1:-build}")
OUT=$(realpath -m "${BENCH_OUT:-$BUILD/bench-results}")
[ -f "$BUILD/libdlock.a" ] || {
    echo "bench: $BUILD/libdlock.a not found; run 'make' first" >&2
    exit 1
}
# shellcheck source=bench/common.sh
. "$HERE/common.sh"

BIN=$(bench_binary "$BUILD" "$ROOT")
mkdir -p "$OUT"
rm -f "$OUT"/lat_*.dat "$OUT/latency.gp" "$OUT/latency.png"

bench_start_redis
bench_start_gateway "$BUILD"

ARGS=(--url "redis://127.0.0.1:$REDIS_PORT" --url "unix://$REDIS_SOCK")
if [ -n "$GATEWAY_URL" ]; then
    ARGS+=(--url "$GATEWAY_URL" --rest-token "$GATEWAY_TOKEN")
else
    echo "bench: REST transport skipped (dlock_rest_gateway not built in $BUILD)" >&2
fi
# The cluster row (mode cluster): its seed URL is one more --url.
if [ -z "${BENCH_MODES:-}" ] || [[ ",$BENCH_MODES," == *,cluster,* ]]; then
    bench_start_cluster
    [ -z "$CLUSTER_URL" ] || ARGS+=(--url "$CLUSTER_URL")
fi
CLI=$(find "$BUILD" -maxdepth 3 -name dlock -type f -perm -u+x 2>/dev/null | head -n 1 || true)
if [ -n "$CLI" ]; then
    ARGS+=(--cli "$CLI")
else
    echo "bench: CLI measurement skipped (no 'dlock' binary in $BUILD)" >&2
fi
ARGS+=(--seconds "${BENCH_SECONDS:-2}" --workers "${BENCH_WORKERS:-16}")
ARGS+=(--keys "${BENCH_KEYS:-1,1000,100000,1000000}" --out "$OUT" --json "$OUT/results.json")
[ -z "${BENCH_MODES:-}" ] || ARGS+=(--modes "$BENCH_MODES")

echo "bench: redis-server $(redis-server --version | sed 's/.*v=\([^ ]*\).*/\1/') on port" \
    "$REDIS_PORT and $REDIS_SOCK; $(nproc) CPUs; load $(cut -d' ' -f1-3 /proc/loadavg);" \
    "pinning: ${SERVER_PIN[*]:-none} (server) / ${CLIENT_PIN[*]:-none} (clients)" >&2
timeout 280 "${CLIENT_PIN[@]}" "$BIN" "${ARGS[@]}" | tee "$OUT/results.txt"

# The REST peer beside dlock's REST rows: W workers with npm @upstash/lock through the same
# gateway, when its node_modules are already there (make bench-peers or the interop test
# installs them; make bench itself never touches the network).
PEER_MODULES=""
for d in "$BUILD/bench-peers" "$BUILD/tests/gateway/interop"; do
    [ -d "$d/node_modules/@upstash/lock" ] && PEER_MODULES=$d && break
done
if [ -n "$GATEWAY_URL" ] && [ -n "$PEER_MODULES" ] && command -v node >/dev/null &&
    { [ -z "${BENCH_MODES:-}" ] || [[ ",$BENCH_MODES," == *,restwait,* ]]; }; then
    cp "$HERE/peers/upstash_contend.cjs" "$PEER_MODULES/"
    W=${BENCH_WORKERS:-16}
    if peer=$(cd "$PEER_MODULES" && timeout 120 "${CLIENT_PIN[@]}" node upstash_contend.cjs \
        "$GATEWAY_URL" "$GATEWAY_TOKEN" "${BENCH_SECONDS:-2}" "$W" 10 2>&1); then
        echo "$peer" >"$OUT/upstash_contend.json"
        echo "$peer" | jq -r --arg w "$W" '"rest: W=\($w) @upstash/lock (retry every 10 ms): " +
            "\(.cycles_per_s | floor) cycles/s, wait p50 \(.p50_ms * 100 | round / 100) ms / p99 " +
            "\(.p99_ms * 100 | round / 100) ms, fairness \(.fairness * 100 | round / 100), " +
            "\(.commands_per_cycle * 100 | round / 100) commands per cycle, \(.overlaps) overlaps"' |
            tee -a "$OUT/results.txt"
    else
        echo "bench: @upstash/lock W=$W skipped: $(echo "$peer" | tail -n 1)" >&2
    fi
fi

# Redlock over five private redis-servers (bench/quorum.sh, about 5 x BENCH_SECONDS): its table
# goes into results.txt, its figures into results.json as "redlock". BENCH_QUORUM=0 skips it.
if [ "${BENCH_QUORUM:-1}" != 0 ] && [ -x "$BUILD/bench/dlock_bench_quorum" ]; then
    if BENCH_OUT="$OUT" timeout 120 "$HERE/quorum.sh" "$BUILD" "${BENCH_SECONDS:-2}" >/dev/null; then
        {
            echo
            echo "Redlock, N=5 private redis-servers (bench/quorum.sh; one uncontended client," \
                "acquire+release; nothing pinned)"
            grep -v '^{' "$OUT/quorum.txt"
        } | tee -a "$OUT/results.txt"
        if command -v jq >/dev/null; then
            jq --slurpfile q "$OUT/quorum.json" '. + {redlock: $q[0]}' "$OUT/results.json" \
                >"$OUT/results.json.tmp" && mv "$OUT/results.json.tmp" "$OUT/results.json"
        else # results.json ends with "}": add the member before it
            { sed '$d' "$OUT/results.json" && printf '  ,"redlock": %s\n}\n' \
                "$(cat "$OUT/quorum.json")"; } >"$OUT/results.json.tmp" &&
                mv "$OUT/results.json.tmp" "$OUT/results.json"
        fi
    else
        echo "bench: the Redlock benchmark (bench/quorum.sh) failed" >&2
    fi
fi

if command -v gnuplot >/dev/null && [ -f "$OUT/latency.gp" ]; then
    (cd "$OUT" && gnuplot latency.gp) && echo "bench: plot $OUT/latency.png"
else
    echo "bench: gnuplot not found; plot skipped (apt-get install gnuplot-nox)" >&2
fi
echo "bench: JSON $OUT/results.json, table $OUT/results.txt"
