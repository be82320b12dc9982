// The acquire+release cycle with npm redlock 5 (node-redlock's v5 line, installed as the alias
// "redlock5" beside redlock 4) over N independent redis-servers, one ioredis client each, for
// bench/peers.sh. The same shape as dlock's Redlock row (bench/quorum.c): one client, one id,
// 10 s lease, no retries; node-redlock's default drift (1 % of the lease + 2 ms).
// usage: node redlock5_quorum.cjs SECONDS PORT...  -> one JSON line on stdout
const Redis = require('ioredis');
const Redlock = require('redlock5').default;
const { timeCycles } = require('./stats.cjs');

async function main() {
    const secs = Number(process.argv[2]);
    const ports = process.argv.slice(3).map(Number);
    if (!(secs > 0) || ports.length < 3 || ports.some((p) => !(p > 0 && p < 65536))) {
        throw new Error('usage: node redlock5_quorum.cjs SECONDS PORT PORT PORT...');
    }
    const clients = ports.map((port) => new Redis({ host: '127.0.0.1', port, lazyConnect: true }));
    await Promise.all(clients.map((c) => c.connect()));
    const redlock = new Redlock(clients, { retryCount: 0 });
    const cycle = async () => {
        const lock = await redlock.acquire(['dlockbench:peer:redlock5'], 10000);
        await lock.release();
    };
    const out = await timeCycles(cycle, secs, 200);
    out.servers = ports.length;
    console.log(JSON.stringify(out));
    clients.forEach((c) => c.disconnect());
}
main().catch((e) => { console.error(String(e)); process.exit(1); });
