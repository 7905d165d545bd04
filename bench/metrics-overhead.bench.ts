/**
 * What counting costs a Lease: the same pool leased directly and through the instrumented
 * PoolApi that the server serves (src/metrics/instrumented-pool.ts: outcome counter, wait
 * histogram, the census following the change feed), in process, alternating rounds so that
 * noise falls on both. Each Lease is followed by the IncrementUsage that ends it (tokens counter).
 * Both pools have a listener on their change feed, as in the server (the watch hub and the state
 * writer always listen): without one the pool skips building the event of each change, a cost
 * the metrics would otherwise be charged for.
 *
 *   npx tsx bench/metrics-overhead.bench.ts [--rounds=5]
 */
import { ManualClock } from "../src/domain/clock";
import { KeyPool } from "../src/domain/key-pool";
import { createServerMetrics } from "../src/metrics/server-metrics";
import type { PoolApi } from "../src/domain/pool-api";
import type { Lease } from "../src/domain/types";
import { median } from "./lib/stats";

const ROUNDS = Number(process.argv.find((a) => a.startsWith("--rounds="))?.split("=")[1] ?? 5);
const KEYS = 1000;
const CALLS = 200_000;

function newPool(clock: ManualClock): KeyPool {
  const pool = new KeyPool({ clock, reuseDelayMs: 0 });
  pool.changes.subscribe(() => {});
  pool.addKeys(Array.from({ length: KEYS }, (_, i) => ({ provider: "openai" as const, key: `sk-overhead-${String(i).padStart(8, "0")}` })));
  return pool;
}

/** Lease + IncrementUsage pairs per second. */
function run(api: PoolApi, clock: ManualClock): number {
  const t0 = performance.now();
  for (let i = 0; i < CALLS; i++) {
    // The in-memory pool answers synchronously, instrumented or not.
    const lease = api.lease({ model: "gpt-4o-mini" }) as Lease;
    api.incrementUsage({ keyHash: lease.keyHash, model: "gpt-4o-mini", inputTokens: 100, outputTokens: 10, leaseId: lease.leaseId });
    if (i % 1000 === 0) clock.advance(1);
  }
  return CALLS / ((performance.now() - t0) / 1000);
}

const plain: number[] = [];
const metered: number[] = [];
for (let round = 0; round < ROUNDS; round++) {
  const order = round % 2 === 0 ? ["plain", "metered"] : ["metered", "plain"];
  for (const which of order) {
    const clock = new ManualClock(1_700_000_000_000);
    const pool = newPool(clock);
    if (which === "plain") plain.push(run(pool, clock));
    else {
      const served = createServerMetrics({ pool, clock, processMetrics: false });
      metered.push(run(served.pool, clock));
      served.close();
    }
    pool.close();
  }
}
const fmt = (xs: number[]) => xs.map((x) => Math.round(x).toLocaleString("en")).join(", ");
console.log(`Lease + IncrementUsage pairs/s, ${KEYS} keys, ${CALLS.toLocaleString("en")} pairs a round, ${ROUNDS} rounds`);
console.log(`plain pool:        median ${Math.round(median(plain)).toLocaleString("en")} (${fmt(plain)})`);
console.log(`instrumented pool: median ${Math.round(median(metered)).toLocaleString("en")} (${fmt(metered)})`);
console.log(`instrumented / plain: ${(median(metered) / median(plain)).toFixed(2)}`);
