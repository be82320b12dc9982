#!/bin/sh
# Installs what dlock needs to build, test, package (make deb), run the demo and benchmarks on
# Debian 12.
# Safe to run again: it only installs what is missing. Needs root (or sudo).
set -eu

PACKAGES="build-essential cmake pkg-config clang-format
libhiredis-dev libssl-dev libcurl4-openssl-dev libjansson-dev libmicrohttpd-dev libcmocka-dev
redis-server redis-tools openssl valgrind clang libclang-rt-14-dev gnuplot-nox python3
nghttp2-proxy jq ca-certificates man-db groff-base debhelper dpkg-dev"

missing=""
for p in $PACKAGES; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed"; then
        missing="$missing $p"
    fi
done
if [ -z "$missing" ]; then
    echo "setup: all packages present"
    exit 0
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    SUDO="sudo"
fi
echo "setup: installing:$missing"
$SUDO apt-get update -q
# nghttp2-proxy is nghttpx, for the HTTP/2 run of the REST tests (tests/harness/rest-env.sh
# starts its own, ignoring /etc/nghttpx); jq reads the benchmark peers' JSON.
# The Debian redis-server package may try to start a system server; dlock's demo and tests
# start private ones on free ports, so a system server on 6379 does not matter either way.
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends $missing
