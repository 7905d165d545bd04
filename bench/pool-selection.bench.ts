/**
 * Pool selection: leases per second at 100, 10,000 and 100,000 keys, in process, with a
 * ManualClock advancing so that keys keep becoming ready (each lease holds its key for the reuse
 * delay; time moves reuseDelay/n per lease, so about one key comes back per lease). Beside it,
 * the naive approach (filter the pool and sort it per pick), timed in the same run. And a pool of
 * the same size spread over all seven providers, leasing each provider's model in turn, to show
 * that more providers do not change how selection scales.
 *
 *   npx tsx bench/pool-selection.bench.ts [--quick]
 *
 * Not a test: figures depend on the machine. BENCHMARKS.md records them.
 */
import { ManualClock } from "../src/domain/clock";
import { KeyPool } from "../src/domain/key-pool";
import { PROVIDERS } from "../src/domain/providers";
import type { KeySpec } from "../src/domain/types";

const REUSE_DELAY_MS = 1000;
const SIZES = [100, 10_000, 100_000];

/** Rates per CPU second (see timed); the wall-clock rates beside them. */
export interface SizeResult {
  keys: number;
  indexedLeasesPerSec: number;
  indexedMicrosPerLease: number;
  naiveLeasesPerSec: number;
  naiveMicrosPerLease: number;
  indexedWallLeasesPerSec: number;
  naiveWallLeasesPerSec: number;
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

/**
 * Runs `step` in batches until `budgetMs` of wall time has passed. Returns ops per second of
 * this process's CPU time (user + system), which a busy shared machine disturbs far less than
 * wall time, and ops per wall-clock second.
 */
function timed(budgetMs: number, minOps: number, step: () => void): { cpu: number; wall: number } {
  let ops = 0;
  const cpu0 = process.cpuUsage();
  const start = process.hrtime.bigint();
  let elapsedMs = 0;
  const batch = 16;
  while (elapsedMs < budgetMs || ops < minOps) {
    for (let i = 0; i < batch; i++) step();
    ops += batch;
    elapsedMs = Number(process.hrtime.bigint() - start) / 1e6;
  }
  const cpu = process.cpuUsage(cpu0);
  return { cpu: (ops * 1e6) / (cpu.user + cpu.system), wall: (ops * 1000) / elapsedMs };
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

/** A model and a valid credential of each provider (composite ones in their joined form). */
const MIXED: { model: string; provider: KeySpec["provider"]; key: (i: string) => string }[] = [
  { provider: "openai", model: "gpt-4", key: (i) => `sk-bench-${i}` },
  { provider: "anthropic", model: "claude-3-5-sonnet-20241022", key: (i) => `sk-ant-bench-${i}` },
  { provider: "google", model: "gemini-2.0-flash", key: (i) => `gai-bench-${i}` },
  { provider: "mistral", model: "mistral-large-latest", key: (i) => `mis-bench-${i}` },
  { provider: "azure", model: "gpt-4o", key: (i) => `bench-east:gpt4o:${i}` },
  { provider: "bedrock", model: "anthropic.claude-3-5-sonnet-20240620-v1:0", key: (i) => `AKIABENCHBENCHBENCH:us-east-1:${i}` },
  {
    provider: "vertex",
    model: "claude-3-5-sonnet-v2@20241022",
    key: (i) => `bench-project:us-central1:pool@bench-project.iam.gserviceaccount.com:-----BEGIN PRIVATE KEY-----\n${i}\n-----END PRIVATE KEY-----`,
  },
];

/** n keys spread evenly over the seven providers; leases go to each provider's model in turn. */
function mixedPool(n: number): () => void {
  if (MIXED.length !== PROVIDERS.length) throw new Error("the mixed pool names every provider");
  const clock = new ManualClock();
  const pool = new KeyPool({ clock, reuseDelayMs: REUSE_DELAY_MS });
  pool.addKeys(
    Array.from({ length: n }, (_, i) => {
      const p = MIXED[i % MIXED.length];
      return { provider: p.provider, key: p.key(i.toString(36).padStart(8, "0")), trial: i % 50 === 0, ...(p.provider === "azure" ? { modelFamilies: ["gpt4o"] } : {}) };
    }),
  );
  const tick = stepper(clock, n);
  let turn = 0;
  const lease = () => {
    const p = MIXED[turn++ % MIXED.length];
    try {
      pool.lease({ model: p.model, provider: p.provider });
    } catch {
      // every key of that provider busy: time moves on below
    }
    tick();
  };
  for (let i = 0; i < n + 1000; i++) lease();
  return lease;
}

/** Leases that found every key busy (ResourceExhausted), by pool size: reported beside the rates. */
const busyAnswers = new Map<number, { busy: number; calls: number }>();

/** One lease (and the clock step after it) on a pool of n keys, with the defaults' lease TTL. */
function indexedPool(n: number): () => void {
  const counts = { busy: 0, calls: 0 };
  const clock = new ManualClock();
  const pool = new KeyPool({ clock, reuseDelayMs: REUSE_DELAY_MS });
  pool.addKeys(specs(n));
  const tick = stepper(clock, n);
  const lease = () => {
    counts.calls++;
    try {
      pool.lease({ model: "gpt-4" });
    } catch {
      counts.busy++; // every key busy: time moves on below
    }
    tick();
  };
  // Warm up: lease every key once, so that the pool is in its steady state.
  for (let i = 0; i < n + 1000; i++) lease();
  counts.busy = counts.calls = 0;
  busyAnswers.set(n, counts);
  return lease;
}

interface NaiveKey {
  hash: string;
  families: string[];
  trial: boolean;
  active: boolean;
  lastUsed: number;
  readyAt: number;
}

/** The naive way: filter the whole pool, sort it, take the first. */
function naivePool(n: number): () => void {
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
  return () => {
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
}

function busyShare(n: number): string {
  const c = busyAnswers.get(n);
  return c && c.calls > 0 ? `${((100 * c.busy) / c.calls).toFixed(2)}%` : "n/a";
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

export async function run(options: { quick?: boolean; log?: (s: string) => void } = {}) {
  const log = options.log ?? ((s: string) => console.log(s));
  log("pool selection: rates per CPU second of this process (wall-clock rates in brackets)");
  // Rounds alternate between sizes, and each size reports its median round, so that a burst
  // of other load on the machine does not land on one size only.
  const rounds = options.quick ? 3 : 7;
  const budget = options.quick ? 150 : 400;
  const indexed = SIZES.map((n) => indexedPool(n));
  const naive = SIZES.map((n) => naivePool(n));
  const mixed = SIZES.map((n) => mixedPool(n));
  const mixedRates: number[][] = SIZES.map(() => []);
  const indexedRates: { cpu: number; wall: number }[][] = SIZES.map(() => []);
  const naiveRates: { cpu: number; wall: number }[][] = SIZES.map(() => []);
  for (let round = 0; round < rounds; round++) {
    SIZES.forEach((_, i) => {
      indexedRates[i].push(timed(budget, 500, indexed[i]));
      naiveRates[i].push(timed(budget / 2, 5, naive[i]));
      mixedRates[i].push(timed(budget, 500, mixed[i]).cpu);
    });
  }
  const results: SizeResult[] = SIZES.map((n, i) => {
    const ix = median(indexedRates[i].map((r) => r.cpu));
    const nv = median(naiveRates[i].map((r) => r.cpu));
    return {
      keys: n,
      indexedLeasesPerSec: Math.round(ix),
      indexedMicrosPerLease: 1e6 / ix,
      naiveLeasesPerSec: Math.round(nv),
      naiveMicrosPerLease: 1e6 / nv,
      indexedWallLeasesPerSec: Math.round(median(indexedRates[i].map((r) => r.wall))),
      naiveWallLeasesPerSec: Math.round(median(naiveRates[i].map((r) => r.wall))),
    };
  });
  for (const r of results) {
    log(
      `pool selection, ${r.keys.toLocaleString("en")} keys: indexed ${r.indexedLeasesPerSec.toLocaleString("en")} leases/s ` +
        `(wall clock ${r.indexedWallLeasesPerSec.toLocaleString("en")}) ` +
        `(${r.indexedMicrosPerLease.toFixed(2)} µs), naive filter+sort ${r.naiveLeasesPerSec.toLocaleString("en")} leases/s ` +
        `(${r.naiveMicrosPerLease.toFixed(1)} µs; wall clock ${r.naiveWallLeasesPerSec.toLocaleString("en")}), indexed/naive ${(r.indexedLeasesPerSec / r.naiveLeasesPerSec).toFixed(1)}x; ` +
        `${busyShare(r.keys)} of indexed calls found every key busy`,
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
  const mixedMedians = mixedRates.map(median);
  SIZES.forEach((n, i) => {
    log(`pool selection, ${n.toLocaleString("en")} keys over seven providers: ${Math.round(mixedMedians[i]).toLocaleString("en")} leases/s`);
    rows.push({
      name: `pool lease, ${n.toLocaleString("en")} keys over seven providers`,
      value: `${Math.round(mixedMedians[i]).toLocaleString("en")} leases/s`,
    });
  });
  const oneProvider = results[results.length - 1].indexedLeasesPerSec / base.indexedLeasesPerSec;
  const sevenProviders = mixedMedians[mixedMedians.length - 1] / mixedMedians[0];
  log(`ratio 100,000/100 keys: one provider ${oneProvider.toFixed(3)}, seven providers ${sevenProviders.toFixed(3)}`);
  rows.push({
    name: `pool lease ratio 100,000/100 keys, seven providers (one provider ${oneProvider.toFixed(3)})`,
    value: sevenProviders.toFixed(3),
    target: ">= 0.2",
    met: sevenProviders >= 0.2,
  });
  return rows;
}

if (require.main === module) {
  run({ quick: process.argv.includes("--quick") }).catch((error) => {
    console.error(error);
    process.exit(1);
  });
}
