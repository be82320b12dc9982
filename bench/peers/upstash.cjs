// The acquire+release cycle with npm @upstash/lock and its own client (@upstash/redis) through
// an Upstash-compatible REST endpoint, for bench/peers.sh.
// usage: node upstash.cjs URL TOKEN SECONDS  -> one JSON line on stdout
const { Redis } = require('@upstash/redis');
const { Lock } = require('@upstash/lock');
const { timeCycles } = require('./stats.cjs');

async function main() {
    const [url, token, secs] = [process.argv[2], process.argv[3], Number(process.argv[4])];
    const redis = new Redis({ url, token });
    const lock = new Lock({ id: 'dlockbench:peer:upstash', redis, lease: 10000,
                            retry: { attempts: 1, delay: 100 } });
    const cycle = async () => {
        if (!(await lock.acquire())) throw new Error('not acquired');
        await lock.release();
    };
    console.log(JSON.stringify(await timeCycles(cycle, secs, 50)));
}
main().catch((e) => { console.error(String(e)); process.exit(1); });
