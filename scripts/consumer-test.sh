#!/bin/sh
# consumer-test.sh PREFIX: uses an installed dlock the ways its users do, and fails if one of
# them does not work:
#   - PREFIX/bin/dlock --version runs (the CLI finds its library: RPATH or the system's path);
#   - a program built with `pkg-config --cflags --libs dlock` (PKG_CONFIG_PATH under PREFIX);
#   - programs built with CMake's find_package(dlock) against dlock::dlock and
#     dlock::dlock_static (CMAKE_PREFIX_PATH=PREFIX).
# PREFIX /usr checks a system install (the Debian packages). Nothing is written outside a temp
# dir. Needs cc, cmake, pkg-config.
set -eu

PREFIX=${1:?usage: consumer-test.sh PREFIX}
HERE=$(cd "$(dirname "$0")" && pwd)
TMP=$(mktemp -d "${TMPDIR:-/tmp}/dlock-consumer.XXXXXX")
trap 'rm -rf "$TMP"' EXIT

say() { echo "consumer-test: $*"; }

"$PREFIX/bin/dlock" --version
say "dlock --version: ok"

# pkg-config: the libdir under PREFIX that holds dlock.pc (lib/<triplet>, lib64 or lib).
pcdir=
for d in "$PREFIX/lib/$(cc -print-multiarch 2>/dev/null)" "$PREFIX/lib64" "$PREFIX/lib"; do
    if [ -f "$d/pkgconfig/dlock.pc" ]; then
        pcdir=$d/pkgconfig
        break
    fi
done
[ -n "$pcdir" ] || {
    say "no dlock.pc under $PREFIX/lib*"
    exit 1
}
export PKG_CONFIG_PATH="$pcdir${PKG_CONFIG_PATH:+:$PKG_CONFIG_PATH}"
libdir=$(pkg-config --variable=libdir dlock)
# shellcheck disable=SC2046 # word splitting of the flags is the point
cc -o "$TMP/pc_consumer" "$HERE/consumer/consumer.c" $(pkg-config --cflags dlock) \
    $(pkg-config --libs dlock) -Wl,-rpath,"$libdir"
"$TMP/pc_consumer"
say "pkg-config consumer ($pcdir/dlock.pc): ok"

cmake -S "$HERE/consumer" -B "$TMP/cmake" -DCMAKE_PREFIX_PATH="$PREFIX" >"$TMP/cmake.log" 2>&1 || {
    cat "$TMP/cmake.log"
    exit 1
}
cmake --build "$TMP/cmake" >>"$TMP/cmake.log" 2>&1 || {
    cat "$TMP/cmake.log"
    exit 1
}
"$TMP/cmake/consumer_shared"
"$TMP/cmake/consumer_static"
say "find_package consumers (dlock::dlock, dlock::dlock_static): ok"
