#!/usr/bin/env bash
# run.sh: builds dlock's fuzz targets with clang + libFuzzer + ASan/UBSan and runs each for a
# bounded time. Fails if any target crashes; each crash input is copied into
# fuzz/corpus/<target>/ (as crash-<sha1>), where ctest's fuzz_replay_<target> replays it from then
# on: every crash found becomes a regression test once the file is committed.
#
#   fuzz/run.sh [WORKDIR] [TARGET...]      targets: url resp rest cli_duration (default: all)
#
# Environment: FUZZ_SECONDS (per target, default 30), FUZZ_JOBS (parallel targets, default 2),
# CC (default clang). New coverage-increasing inputs go to WORKDIR/<target>/corpus, never into
# the repository; the seeds in fuzz/corpus/<target>/ are read-only inputs.
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
work=${1:-$root/build-fuzz}
shift || true
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(url resp rest cli_duration)
secs=${FUZZ_SECONDS:-30}
jobs=${FUZZ_JOBS:-2}
cc=${CC:-clang}
command -v "$cc" >/dev/null || {
    echo "fuzz/run.sh: $cc not found (apt-get install clang libclang-rt-14-dev)" >&2
    exit 2
}
mkdir -p "$work/obj"
work=$(cd "$work" && pwd)

flags=(-g -O1 -fno-omit-frame-pointer -fsanitize=fuzzer-no-link,address,undefined
    -fno-sanitize-recover=undefined -std=c11 -DDLOCK_HAVE_REST -I"$root/include" -I"$root/src"
    -I"$root/tools")
libs=($(pkg-config --libs hiredis libcurl jansson) -lssl -lcrypto -lpthread)

# The library's sources, as the top-level CMakeLists.txt lists them, built once into an archive.
mapfile -t srcs < <(sed -n '/set(DLOCK_SOURCES/,/)/p' "$root/CMakeLists.txt" |
    grep -o 'src/[A-Za-z0-9_]*\.c')
echo "fuzz: building ${#srcs[@]} library sources with $cc (fuzzer coverage, ASan, UBSan)"
rm -f "$work/obj"/*.o "$work/libdlock_fuzz.a"
printf '%s\n' "${srcs[@]}" | xargs -P "$jobs" -I{} sh -c \
    "$cc ${flags[*]} -c '$root/{}' -o '$work/obj/'\$(basename {} .c).o" || {
    echo "fuzz: library build failed" >&2
    exit 2
}
# The Lua scripts, embedded as CMake does it (the library's build generates this file too).
cmake -DDIR="$root/src/lua" -DOUT="$work/lua_scripts.c" -P "$root/cmake/embed_lua.cmake" &&
    $cc "${flags[@]}" -c "$work/lua_scripts.c" -o "$work/obj/lua_scripts.o" || {
    echo "fuzz: embedding the Lua scripts failed" >&2
    exit 2
}
ar rcs "$work/libdlock_fuzz.a" "$work"/obj/*.o

build_target() {
    local t=$1 extra=()
    rm -f "$work/fuzz_$t"
    [ "$t" = cli_duration ] && extra=("$root/tools/duration.c")
    "$cc" "${flags[@]}" -fsanitize=fuzzer "$here/fuzz_$t.c" "${extra[@]}" \
        "$work/libdlock_fuzz.a" "${libs[@]}" -o "$work/fuzz_$t"
}

run_target() {
    local t=$1 dir=$work/$t
    rm -rf "$dir/crashes"
    mkdir -p "$dir/corpus" "$dir/crashes"
    local opts=(-max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 -max_len=4096
        -artifact_prefix="$dir/crashes/" -print_final_stats=1)
    # A garbage "*2147483647" reply makes hiredis 0.14 calloc 16 GB: let such an allocation fail
    # (as in a process with a memory limit) instead of counting it as a crash.
    ASAN_OPTIONS=allocator_may_return_null=1:max_allocation_size_mb=512:detect_leaks=1 \
        UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
        "$work/fuzz_$t" "${opts[@]}" "$dir/corpus" "$here/corpus/$t" >"$dir/log" 2>&1
    local rc=$?
    local execs
    execs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$dir/log" | grep -o '[0-9]*$' |
        tail -1)
    local crashes=("$dir"/crashes/*)
    if [ $rc -ne 0 ] || [ -e "${crashes[0]}" ]; then
        echo "fuzz $t: FAILED after ${execs:-?} inputs (exit $rc); log: $dir/log"
        grep -E 'ERROR|SUMMARY|fuzz_' "$dir/log" | head -5 | sed 's/^/    /'
        for f in "${crashes[@]}"; do
            [ -e "$f" ] || continue
            local keep
            keep="$here/corpus/$t/crash-$(sha1sum "$f" | cut -c1-16)"
            cp "$f" "$keep"
            echo "    regression input saved: ${keep#$root/}"
        done
        echo "FIGURES name=fuzz-$t execs=${execs:-0} ok=0"
        return 1
    fi
    echo "fuzz $t: ok, ${execs:-0} inputs in ${secs}s, corpus $(ls "$dir/corpus" | wc -l) files"
    echo "FIGURES name=fuzz-$t execs=${execs:-0} ok=1"
}

status=0
for t in "${targets[@]}"; do
    [ -f "$here/fuzz_$t.c" ] || {
        echo "fuzz: no target $t" >&2
        status=1
        continue
    }
    if [ "$t" = rest ] && [ ! -f "$root/src/rest.c" ]; then
        echo "fuzz rest: skipped (no src/rest.c)"
        continue
    fi
    if [ "$t" = cli_duration ] && [ ! -f "$root/tools/duration.c" ]; then
        echo "fuzz cli_duration: skipped (no tools/duration.c)"
        continue
    fi
    build_target "$t" || {
        echo "fuzz $t: build failed"
        status=1
        continue
    }
done
# Two targets at a time on two cores, each for FUZZ_SECONDS.
pids=()
outs=()
for t in "${targets[@]}"; do
    [ -x "$work/fuzz_$t" ] || continue
    while [ "$(jobs -rp | wc -l)" -ge "$jobs" ]; do
        sleep 0.5
    done
    run_target "$t" >"$work/$t.result" 2>&1 &
    pids+=($!)
    outs+=("$work/$t.result")
done
for i in "${!pids[@]}"; do
    wait "${pids[$i]}" || status=1
    cat "${outs[$i]}"
done
exit $status
