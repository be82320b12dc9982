"""The acquire+release cycle with Debian's python3-redis Lock, for bench/peers.sh.

usage: python3 redis_py.py PORT SECONDS  -> one JSON line on stdout
"""
import json
import math
import sys
import time

import redis


def pct(s, p):
    if not s:
        return 0.0
    i = max(1, math.ceil(p / 100 * len(s))) - 1
    return s[min(i, len(s) - 1)]


def main():
    port, secs = int(sys.argv[1]), float(sys.argv[2])
    r = redis.Redis(host="127.0.0.1", port=port)
    lock = r.lock("dlockbench:peer:redis-py", timeout=10, blocking=False)

    def cycle():
        if not lock.acquire():
            raise SystemExit("not acquired")
        lock.release()

    for _ in range(200):  # warm up
        cycle()
    lat = []
    start = time.perf_counter_ns()
    end = start + int(secs * 1e9)
    t = start
    while t < end:
        t0 = t
        cycle()
        t = time.perf_counter_ns()
        lat.append((t - t0) / 1000)
    lat.sort()
    print(json.dumps({"ops_per_s": len(lat) / ((t - start) / 1e9), "p50_us": pct(lat, 50),
                      "p99_us": pct(lat, 99), "p999_us": pct(lat, 99.9),
                      "samples": len(lat), "version": redis.__version__}))


main()
