# bench/common.sh: sourced by run.sh and peers.sh. Starts a private redis-server (TCP on a free
# port on 127.0.0.1 plus a unix socket, in a temp dir; tests/harness/redis-lib.sh) and, when it
# has been built, the local Upstash REST gateway in front of it. Everything started here is
# stopped by PID from the EXIT trap; nothing is stopped by name.

# shellcheck source=../tests/harness/redis-lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/../tests/harness/redis-lib.sh"

BENCH_HARNESS=$(cd "$(dirname "${BASH_SOURCE[0]}")/../tests/harness" && pwd)
BENCH_TMP=$(mktemp -d "${TMPDIR:-/tmp}/dlock-bench.XXXXXX")

# CPU pinning (BENCH_PIN=1, the default with 2+ CPUs): the server side (redis-server, gateway)
# on CPU 0, the clients on the others. Without it the scheduler moves client and server between
# sharing a CPU and not, which changes a round trip by 2x from one second to the next.
SERVER_PIN=()
CLIENT_PIN=()
if [ "${BENCH_PIN:-1}" = 1 ] && [ "$(nproc)" -ge 2 ] && command -v taskset >/dev/null; then
    SERVER_PIN=(taskset -c 0)
    CLIENT_PIN=(taskset -c "1-$(($(nproc) - 1))")
fi
BENCH_PIDS=()

bench_cleanup() {
    local pid
    for pid in "${BENCH_PIDS[@]}"; do
        kill "$pid" 2>/dev/null || true
    done
    for pid in "${BENCH_PIDS[@]}"; do
        wait "$pid" 2>/dev/null || true
    done
    dl_redis_stop "$BENCH_TMP/redis.pid"
    if [ -d "$BENCH_TMP/cluster" ]; then # by the PID files cluster-env.sh wrote
        bash "$BENCH_HARNESS/cluster-env.sh" stop "$BENCH_TMP/cluster" >/dev/null 2>&1 || true
    fi
    if [ -d "$BENCH_TMP/quorum" ]; then # peers.sh's five Redlock servers, by their PID files
        bash "$BENCH_HARNESS/quorum-env.sh" stop "$BENCH_TMP/quorum" >/dev/null 2>&1 || true
    fi
    rm -rf "$BENCH_TMP"
}
trap bench_cleanup EXIT
trap 'exit 130' INT TERM

# Sets REDIS_PORT, REDIS_SOCK, REDIS_PID. Retries on a port clash.
bench_start_redis() {
    command -v redis-server >/dev/null || {
        echo "bench: redis-server not found (apt-get install redis-server)" >&2
        exit 1
    }
    REDIS_SOCK=$BENCH_TMP/redis.sock
    DL_REDIS_PREFIX=("${SERVER_PIN[@]}")
    dl_redis_start "$BENCH_TMP" redis --unixsocket "$REDIS_SOCK" --unixsocketperm 700 || {
        echo "bench: redis-server did not start; see $BENCH_TMP/redis.log" >&2
        exit 1
    }
    REDIS_PORT=$DL_REDIS_PORT
    REDIS_PID=$DL_REDIS_PID
}

# A Redis Cluster of 3 masters and 3 replicas (tests/harness/cluster-env.sh), on the server CPU
# like the single server. Sets CLUSTER_URL (the first node, a master: the seed), or leaves it
# empty when the cluster did not come up in 90 s.
bench_start_cluster() {
    CLUSTER_URL=
    if ! timeout 90 "${SERVER_PIN[@]}" bash "$BENCH_HARNESS/cluster-env.sh" start \
        "$BENCH_TMP/cluster" >"$BENCH_TMP/cluster.log" 2>&1; then
        echo "bench: the cluster did not start; cluster row skipped:" \
            "$(tail -n 1 "$BENCH_TMP/cluster.log")" >&2
        return 0
    fi
    CLUSTER_URL=$(sed -n 's/^DLOCK_TEST_CLUSTER_URL=//p' "$BENCH_TMP/cluster/env")
}

# The Upstash REST gateway from tests/gateway, if built: sets GATEWAY_URL and GATEWAY_TOKEN,
# or leaves GATEWAY_URL empty.
bench_start_gateway() {
    local build=$1 gw
    GATEWAY_URL=
    GATEWAY_TOKEN=dlock-bench-token
    gw=$(find "$build" -name dlock_rest_gateway -type f -perm -u+x 2>/dev/null | head -n 1)
    if [ -z "$gw" ]; then
        return 0
    fi
    "${SERVER_PIN[@]}" "$gw" --redis "127.0.0.1:$REDIS_PORT" --token "$GATEWAY_TOKEN" \
        --port-file "$BENCH_TMP/gateway.port" >"$BENCH_TMP/gateway.log" 2>&1 &
    BENCH_PIDS+=("$!")
    local i
    for i in $(seq 1 50); do
        if [ -s "$BENCH_TMP/gateway.port" ]; then
            GATEWAY_URL="http://127.0.0.1:$(cat "$BENCH_TMP/gateway.port")"
            return 0
        fi
        sleep 0.1
    done
    echo "bench: the REST gateway did not start; REST skipped" >&2
}

# Builds dlock_bench if the main build has no bench target; prints its path.
bench_binary() {
    local build=$1 root=$2
    if [ -x "$build/bench/dlock_bench" ]; then
        echo "$build/bench/dlock_bench"
        return 0
    fi
    cmake -S "$root/bench" -B "$build/bench-standalone" -DDLOCK_BUILD_DIR="$build" >&2 >/dev/null
    cmake --build "$build/bench-standalone" >&2 >/dev/null
    echo "$build/bench-standalone/dlock_bench"
}
