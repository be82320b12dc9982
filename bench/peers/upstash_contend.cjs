// W workers contending for one id with npm @upstash/lock through an Upstash-compatible REST
// endpoint, for bench/run.sh: the peer beside dlock's REST rows (bench_rest.c). Each worker has
// its own Lock (same id) and loops acquire + release; @upstash/lock waits by retrying after a
// fixed delay. Commands are counted by the gateway (GET /gateway-stats).
// usage: node upstash_contend.cjs URL TOKEN SECONDS WORKERS DELAY_MS  -> one JSON line on stdout
const { Redis } = require('@upstash/redis');
const { Lock } = require('@upstash/lock');

const stats = async (url) => (await fetch(`${url}/gateway-stats`)).json();
const pct = (v, p) => v[Math.min(v.length - 1, Math.floor((v.length - 1) * p))];

async function main() {
    const [url, token] = [process.argv[2], process.argv[3]];
    const [secs, W, delay] = [Number(process.argv[4]), Number(process.argv[5]), Number(process.argv[6])];
    const redis = new Redis({ url, token });
    const id = 'dlockbench:peer:upstash-contend';
    const counts = new Array(W).fill(0), waits = [];
    let inside = 0, overlaps = 0, errors = 0;
    const s0 = await stats(url);
    const t0 = performance.now(), end = t0 + secs * 1000;
    await Promise.all(counts.map(async (_, i) => {
        const lock = new Lock({ id, redis, lease: 10000, retry: { attempts: 1e9, delay } });
        while (performance.now() < end) {
            const a = performance.now();
            if (!(await lock.acquire())) { errors++; continue; }
            waits.push(performance.now() - a);
            if (inside++ !== 0) overlaps++;
            inside--;
            counts[i]++;
            if (!(await lock.release())) errors++;
        }
    }));
    const elapsed = (performance.now() - t0) / 1000;
    const s1 = await stats(url);
    waits.sort((x, y) => x - y);
    const cycles = counts.reduce((x, y) => x + y, 0);
    console.log(JSON.stringify({
        cycles, cycles_per_s: cycles / elapsed, p50_ms: pct(waits, 0.5), p99_ms: pct(waits, 0.99),
        fairness: Math.min(...counts) / Math.max(...counts), overlaps, errors,
        commands_per_cycle: (s1.commands - s0.commands) / cycles,
    }));
}
main().catch((e) => { console.error(String(e)); process.exit(1); });
