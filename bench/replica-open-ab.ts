/**
 * The pool kept in Redis, opened in this process by this build and by others side by side: the
 * time of `RedisPool.open` for a replica joining a Redis that holds 100,000 keys, with the same
 * keys configured and with none, without node's start or the server's set-up around it (those are
 * in bench/replicas.bench.ts's spawn-to-SERVING figures). Each round opens every build in turn,
 * the order turning each round, on one private redis-server; the medians are compared.
 *
 *   npx tsx bench/replica-open-ab.ts --baseline=<dir>[,<dir>...] [--rounds=5]
 *
 * A baseline is a source tree (its src/ is loaded through tsx), e.g. an older commit's:
 *   git archive <commit> src | tar -x -C /tmp/before
 *
 * Not a test: figures depend on the machine. BENCHMARKS.md records them.
 */
import * as path from "node:path";
import Redis from "ioredis";
import type { KeySpec } from "../src/domain/types";
import { startRedisServer } from "../test/support/redis-server";
import { benchKey } from "./lib/keys-file";
import { median } from "./lib/stats";

const KEYS = 100_000;
const arg = (name: string, fallback: string) => process.argv.find((a) => a.startsWith(`--${name}=`))?.slice(name.length + 3) ?? fallback;

interface OpenablePool {
  close(): Promise<void>;
  readonly size: number;
}
type Open = (options: { redis: Redis; prefix: string; clock: unknown; configured: readonly KeySpec[] }) => Promise<OpenablePool>;

function loadBuild(dir: string): { label: string; open: Open; clock: unknown } {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const { RedisPool } = require(path.join(dir, "src", "redis", "redis-pool")) as { RedisPool: { open: Open } };
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const { systemClock } = require(path.join(dir, "src", "domain", "clock")) as { systemClock: unknown };
  return { label: dir, open: (o) => RedisPool.open(o), clock: systemClock };
}

async function main(): Promise<void> {
  const rounds = Number(arg("rounds", "5"));
  const builds = [{ ...loadBuild(path.join(__dirname, "..")), label: "this build" }, ...arg("baseline", "").split(",").filter(Boolean).map(loadBuild)];
  const server = await startRedisServer({ appendfsync: "always" });
  const specs: KeySpec[] = Array.from({ length: KEYS }, (_, i) => ({ provider: "openai", key: benchKey(i) }));
  const openOnce = async (build: (typeof builds)[number], configured: readonly KeySpec[]) => {
    const redis = new Redis(server.url);
    await redis.ping();
    const start = performance.now();
    const pool = await build.open({ redis, prefix: "join", clock: build.clock, configured });
    const ms = performance.now() - start;
    if (pool.size !== KEYS) throw new Error(`${build.label} loaded ${pool.size} keys, not ${KEYS}`);
    await pool.close();
    redis.disconnect();
    return ms;
  };
  try {
    const fill = await openOnce(builds[0]!, specs);
    console.log(`filled an empty Redis with ${KEYS} keys in ${fill.toFixed(0)} ms (this build)`);
    const times = builds.map(() => ({ none: [] as number[], configured: [] as number[] }));
    for (let round = 0; round < rounds; round++) {
      const order = builds.map((_, i) => i);
      if (round % 2) order.reverse();
      for (const i of order) {
        const none = await openOnce(builds[i]!, []);
        const configured = await openOnce(builds[i]!, specs);
        times[i]!.none.push(none);
        times[i]!.configured.push(configured);
        console.log(`round ${round + 1} ${builds[i]!.label}: none configured ${none.toFixed(0)} ms, the same ${KEYS} configured ${configured.toFixed(0)} ms`);
      }
    }
    for (const [i, b] of builds.entries()) {
      const none = median(times[i]!.none);
      const configured = median(times[i]!.configured);
      const ratio = i === 0 ? "" : `; this build / it: ${(median(times[0]!.none) / none).toFixed(2)}, ${(median(times[0]!.configured) / configured).toFixed(2)}`;
      console.log(`median ${b.label}: none configured ${none.toFixed(0)} ms, the same ${KEYS} configured ${configured.toFixed(0)} ms${ratio}`);
    }
  } finally {
    await server.close();
  }
}

main().catch((error) => {
  console.error(error);
  process.exit(1);
});
