// Nearest-rank percentiles, as dlock_bench computes them. Latencies in microseconds.
function pct(sorted, p) {
    if (sorted.length === 0) return 0;
    const i = Math.max(1, Math.ceil((p / 100) * sorted.length)) - 1;
    return sorted[Math.min(i, sorted.length - 1)];
}
exports.summary = (lat, elapsed) => {
    const s = Float64Array.from(lat).sort();
    return { ops_per_s: lat.length / elapsed, p50_us: pct(s, 50), p99_us: pct(s, 99),
             p999_us: pct(s, 99.9), samples: lat.length };
};

// Runs `cycle` `warmup` times, then for `secs` seconds, timing each run; returns summary().
exports.timeCycles = async (cycle, secs, warmup) => {
    for (let i = 0; i < warmup; i++) await cycle();
    const lat = [];
    const start = process.hrtime.bigint(), end = start + BigInt(Math.round(secs * 1e9));
    let t = start;
    while (t < end) {
        const t0 = t;
        await cycle();
        t = process.hrtime.bigint();
        lat.push(Number(t - t0) / 1000);
    }
    return exports.summary(lat, Number(t - start) / 1e9);
};
