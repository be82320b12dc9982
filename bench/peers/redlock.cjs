// The acquire+release cycle with npm redlock (v4 API, ioredis client), for bench/peers.sh.
// usage: node redlock.cjs PORT SECONDS  -> one JSON line on stdout
const Redis = require('ioredis');
const Redlock = require('redlock');
const { timeCycles } = require('./stats.cjs');

async function main() {
    const [port, secs] = [Number(process.argv[2]), Number(process.argv[3])];
    const client = new Redis({ host: '127.0.0.1', port, lazyConnect: true });
    await client.connect();
    const redlock = new Redlock([client], { retryCount: 0, driftFactor: 0.01 });
    const cycle = async () => {
        const lock = await redlock.lock('dlockbench:peer:redlock', 10000);
        await lock.unlock();
    };
    console.log(JSON.stringify(await timeCycles(cycle, secs, 200)));
    client.disconnect();
}
main().catch((e) => { console.error(String(e)); process.exit(1); });
