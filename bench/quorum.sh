#!/usr/bin/env bash
# quorum.sh: the Redlock benchmark. Starts five private redis-servers (tests/harness/quorum-env.sh,
# with appendfsync everysec here: the benchmark measures dlock's fan-out, not the disk), runs
# BUILD/bench/dlock_bench_quorum, and stops the servers by PID. `make bench` runs it too
# (bench/run.sh), and adds its rows to results.txt and results.json.
#
#   bench/quorum.sh [BUILD] [SECONDS]      (default: build, 2 s per measurement)
#
# Output: the table on stdout, and in BENCH_OUT (default BUILD/bench-results) quorum.txt and
# quorum.json (the JSON object, the table's last line).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
build=${1:-build}
seconds=${2:-2}
out=${BENCH_OUT:-$build/bench-results}
dir=$(mktemp -d /tmp/dlock-bench-quorum.XXXXXX)
trap 'bash "$here/../tests/harness/quorum-env.sh" stop "$dir" >/dev/null 2>&1; rm -rf "$dir"' EXIT
DLOCK_QUORUM_FSYNC=everysec bash "$here/../tests/harness/quorum-env.sh" start "$dir" >/dev/null
# shellcheck disable=SC1091
. "$dir/env"
mkdir -p "$out"
"$build/bench/dlock_bench_quorum" "$seconds" "$DLOCK_Q1_PORT" "$DLOCK_Q2_PORT" "$DLOCK_Q3_PORT" \
    "$DLOCK_Q4_PORT" "$DLOCK_Q5_PORT" | tee "$out/quorum.txt"
tail -n 1 "$out/quorum.txt" >"$out/quorum.json"
