// The JS side of tests/interop/run.sh: the real npm @upstash/lock and @upstash/redis, with
// their defaults (auto-pipelining, base64 responses, read-your-writes), on the same gateway.
//
//   node interop.mjs hold ID HOLD_MS         acquire once; print "HELD <uuid>"; wait; release
//   node interop.mjs try ID                  acquire once; exit 0 (acquired, then released)
//                                            or 1 (not acquired)
//   node interop.mjs debounce ID WAIT ARG FILE
//       @upstash/lock 0.2.1 does not export Debounce (shared/upstash-rest.md §8), so this is
//       its source's algorithm, over @upstash/redis: INCR, wait, GET, compare; if equal,
//       append "JS:<ARG>" to FILE. Exit 0 (ran) or 3 (superseded).
//
// URL and token come from UPSTASH_REDIS_REST_URL / UPSTASH_REDIS_REST_TOKEN (Redis.fromEnv).
import { appendFileSync } from "node:fs";
import { Lock } from "@upstash/lock";
import { Redis } from "@upstash/redis";

const redis = Redis.fromEnv();
const [cmd, id, a1, a2, a3] = process.argv.slice(2);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

if (cmd === "hold" || cmd === "try") {
  const lock = new Lock({ id, redis, lease: 30000, retry: { attempts: 1, delay: 10 } });
  if (!(await lock.acquire())) {
    console.log("NOT_ACQUIRED");
    process.exit(1);
  }
  if (cmd === "hold") {
    console.log(`HELD ${lock.config?.UUID ?? (await redis.get(id))}`);
    await sleep(Number(a1));
  } else {
    console.log(`ACQUIRED status=${await lock.getStatus()}`);
  }
  if (!(await lock.release())) {
    console.log("RELEASE_FAILED");
    process.exit(2);
  }
  if (cmd === "hold") console.log("RELEASED");
} else if (cmd === "debounce") {
  const wait = Number(a1);
  const thisTaskIncr = await redis.incr(id);
  await sleep(wait);
  const currentTaskIncr = await redis.get(id);
  if (thisTaskIncr !== currentTaskIncr) process.exit(3);
  appendFileSync(a3, `JS:${a2}\n`);
} else {
  console.error(`unknown command ${cmd}`);
  process.exit(99);
}
