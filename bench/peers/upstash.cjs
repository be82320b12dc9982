// The acquire+release cycle with npm @upstash/lock and its own client (@upstash/redis) through
// an Upstash-compatible REST endpoint, for bench/peers.sh.
// usage: node upstash.cjs URL TOKEN SECONDS  -> one JSON line on stdout
const { Redis } = require('@upstash/redis');
const { Lock } = require('@upstash/lock');
const { summary } = require('./stats.cjs');

async function main() {
    const [url, token, secs] = [process.argv[2], process.argv[3], Number(process.argv[4])];
    const redis = new Redis({ url, token });
    const lock = new Lock({ id: 'dlockbench:peer:upstash', redis, lease: 10000,
                            retry: { attempts: 1, delay: 100 } });
    const cycle = async () => {
        if (!(await lock.acquire())) throw new Error('not acquired');
        await lock.release();
    };
    for (let i = 0; i < 50; i++) await cycle(); // warm up
    const lat = [];
    const start = process.hrtime.bigint(), end = start + BigInt(Math.round(secs * 1e9));
    let t = start;
    while (t < end) {
        const t0 = t;
        await cycle();
        t = process.hrtime.bigint();
        lat.push(Number(t - t0) / 1000);
    }
    console.log(JSON.stringify(summary(lat, Number(t - start) / 1e9)));
}
main().catch((e) => { console.error(String(e)); process.exit(1); });
