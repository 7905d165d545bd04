/**
 * Pool selection: leases per second at 100, 10,000 and 100,000 keys, in process, with a
 * ManualClock advancing so that keys keep becoming ready (each lease holds its key for the reuse
 * delay; time moves reuseDelay/n per lease, so about one key comes back per lease). Beside it,
 * the original's approach (filter the pool and sort it per pick), timed in the same run.
 *
 *   npx tsx bench/pool-selection.bench.ts [--quick]
 *
 * Not a test: figures depend on the machine. BENCHMARKS.md records them.
 */
import { ManualClock } from "../src/domain/clock";
import { KeyPool } from "../src/domain/key-pool";
import type { KeySpec } from "../src/domain/types";

const REUSE_DELAY_MS = 1000;
const SIZES = [100, 10_000, 100_000];

export interface SizeResult {
  keys: number;
  indexedLeasesPerSec: number;
  indexedMicrosPerLease: number;
  naiveLeasesPerSec: number;
  naiveMicrosPerLease: number;
}

function specs(n: number): KeySpec[] {
  // Mixed like a real pool: a few trial keys and a few gpt4-32k keys among plain ones.
  return Array.from({ length: n }, (_, i) => ({
    provider: "openai" as const,
    key: `sk-bench-${i.toString(36).padStart(8, "0")}`,
    modelFamilies: i % 10 === 0 ? ["turbo", "gpt4", "gpt4-32k"] : ["turbo", "gpt4"],
    trial: i % 50 === 0,
  }));
}

/** Runs `step` in batches until `budgetMs` of wall time has passed; returns ops per second. */
function timed(budgetMs: number, minOps: number, step: () => void): { opsPerSec: number; ops: number } {
  let ops = 0;
  const start = process.hrtime.bigint();
  let elapsedMs = 0;
  const batch = 64;
  while (elapsedMs < budgetMs || ops < minOps) {
    for (let i = 0; i < batch; i++) step();
    ops += batch;
    elapsedMs = Number(process.hrtime.bigint() - start) / 1e6;
  }
  return { opsPerSec: (ops * 1000) / elapsedMs, ops };
}

/** A clock stepper: moves time REUSE_DELAY/n per call, in whole milliseconds. */
function stepper(clock: ManualClock, n: number) {
  const perLease = REUSE_DELAY_MS / n;
  let owed = 0;
  return () => {
    owed += perLease;
    if (owed >= 1) {
      const whole = Math.floor(owed);
      owed -= whole;
      clock.advance(whole);
    }
  };
}

function measureIndexed(n: number, budgetMs: number): { opsPerSec: number } {
  const clock = new ManualClock();
  const pool = new KeyPool({ clock, reuseDelayMs: REUSE_DELAY_MS, leaseTtlMs: 3_600_000 });
  pool.addKeys(specs(n));
  const tick = stepper(clock, n);
  const lease = () => {
    try {
      pool.lease({ model: "gpt-4" });
    } catch {
      // Every key busy: time moves on below.
    }
    tick();
  };
  // Warm up, so that every key has been leased once and the pool is in its steady state.
  for (let i = 0; i < Math.min(n, 20_000); i++) lease();
  const result = timed(budgetMs, 1000, lease);
  pool.close();
  return result;
}

interface NaiveKey {
  hash: string;
  families: string[];
  trial: boolean;
  active: boolean;
  lastUsed: number;
  readyAt: number;
}

/** The original's way: filter the whole pool, sort it, take the first. */
function measureNaive(n: number, budgetMs: number): { opsPerSec: number } {
  const clock = new ManualClock();
  const keys: NaiveKey[] = specs(n).map((s, i) => ({
    hash: `oai-${i.toString(16).padStart(16, "0")}`,
    families: s.modelFamilies!,
    trial: s.trial === true,
    active: true,
    lastUsed: 0,
    readyAt: 0,
  }));
  const tick = stepper(clock, n);
  const lease = () => {
    const now = clock.now();
    const ready = keys.filter((k) => k.active && k.families.includes("gpt4") && now >= k.readyAt);
    ready.sort(
      (a, b) =>
        Number(b.trial) - Number(a.trial) ||
        Number(a.families.includes("gpt4-32k")) - Number(b.families.includes("gpt4-32k")) ||
        a.lastUsed - b.lastUsed ||
        (a.hash < b.hash ? -1 : 1),
    );
    const k = ready[0];
    if (k) {
      k.lastUsed = now;
      k.readyAt = now + REUSE_DELAY_MS;
    }
    tick();
  };
  return timed(budgetMs, 20, lease);
}

export async function run(options: { quick?: boolean; log?: (s: string) => void } = {}) {
  const log = options.log ?? ((s: string) => console.log(s));
  const budget = options.quick ? 300 : 2000;
  const results: SizeResult[] = [];
  for (const n of SIZES) {
    const indexed = measureIndexed(n, budget);
    const naive = measureNaive(n, Math.max(budget / 2, 300));
    const r: SizeResult = {
      keys: n,
      indexedLeasesPerSec: Math.round(indexed.opsPerSec),
      indexedMicrosPerLease: 1e6 / indexed.opsPerSec,
      naiveLeasesPerSec: Math.round(naive.opsPerSec),
      naiveMicrosPerLease: 1e6 / naive.opsPerSec,
    };
    results.push(r);
    log(
      `pool selection, ${n.toLocaleString("en")} keys: indexed ${r.indexedLeasesPerSec.toLocaleString("en")} leases/s ` +
        `(${r.indexedMicrosPerLease.toFixed(2)} µs), naive filter+sort ${r.naiveLeasesPerSec.toLocaleString("en")} leases/s ` +
        `(${r.naiveMicrosPerLease.toFixed(1)} µs), indexed/naive ${(r.indexedLeasesPerSec / r.naiveLeasesPerSec).toFixed(1)}x`,
    );
  }
  const base = results[0];
  const rows: { name: string; value: string; target?: string; met?: boolean }[] = results.map((r) => ({
    name: `pool lease, ${r.keys.toLocaleString("en")} keys (indexed / naive)`,
    value: `${r.indexedLeasesPerSec.toLocaleString("en")} / ${r.naiveLeasesPerSec.toLocaleString("en")} leases/s`,
  }));
  for (const r of results.slice(1)) {
    const ratio = r.indexedLeasesPerSec / base.indexedLeasesPerSec;
    const naiveRatio = r.naiveLeasesPerSec / base.naiveLeasesPerSec;
    log(
      `ratio ${r.keys.toLocaleString("en")}/${base.keys} keys: indexed ${ratio.toFixed(3)}, naive ${naiveRatio.toFixed(5)}`,
    );
    rows.push({
      name: `pool lease ratio ${r.keys.toLocaleString("en")}/${base.keys} keys (indexed; naive ${naiveRatio.toFixed(5)})`,
      value: ratio.toFixed(3),
      ...(r.keys === 100_000 ? { target: ">= 0.2", met: ratio >= 0.2 } : {}),
    });
  }
  return rows;
}

if (require.main === module) {
  run({ quick: process.argv.includes("--quick") }).catch((error) => {
    console.error(error);
    process.exit(1);
  });
}
