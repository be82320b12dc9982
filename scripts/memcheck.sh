#!/bin/bash
# Runs the test suite under valgrind (ctest -T memcheck) and fails on any leak or memory error.
# CTest's memcheck mode records defects in log files without failing, so this script reads
# them. Tests labelled "timing" assert on wall-clock bounds that valgrind's slowdown breaks;
# they run under ASan instead. Tests labelled "cli" are shell scripts: valgrind would check
# bash, not dlock; the CLI runs under ASan+UBSan in the asan build. "install" builds consumers
# with cmake and cc, which valgrind has no business checking.
# The fixtures (label "fixture": the redis-servers, gateways, cluster and sentinel group) are
# shell scripts too; they run natively, before and after the checked programs, so valgrind's
# slowdown cannot time them out.
set -euo pipefail
build=${1:-build}
cd "$build"
rm -rf Testing/Temporary/MemoryChecker.*
status=0
cleanup() { ctest -L fixture -R '_stop$' -FA '.*' >/dev/null || true; }
trap cleanup EXIT
ctest -L fixture -R '_start$' -FA '.*' --output-on-failure
ctest -T memcheck -LE "timing|cli|install|fixture" -FA '.*' --output-on-failure -j 2 || status=$?
defects=$(grep -lE "ERROR SUMMARY: [1-9]|definitely lost: [1-9]|indirectly lost: [1-9]" \
    Testing/Temporary/MemoryChecker.*.log 2>/dev/null || true)
if [ -n "$defects" ]; then
    echo "memcheck: valgrind found defects in:"
    for f in $defects; do
        echo "== $f"
        grep -E "ERROR SUMMARY|definitely lost|indirectly lost|Invalid|uninitialised" "$f" | head -20
    done
    exit 1
fi
if [ "$status" -ne 0 ]; then
    echo "memcheck: tests failed under valgrind"
    exit "$status"
fi
echo "memcheck: no leaks or memory errors"
