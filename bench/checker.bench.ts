/**
 * The key checker with 10,000 keys behind the fake upstream. Two built servers with the same
 * keys file and a SQLite state file each, pinned to core 0: A with the checker off, B with it on
 * (concurrency 8, pointed at the fake upstream, which runs on the load core and answers each
 * request after 30 ms, so that checking all keys lasts well past the measurement). Rounds
 * alternate A and B while B checks; in each window a client keeps Lease calls going at a steady
 * rate and records each call's latency.
 *
 * Reported: Lease p50 / p99 on A (idle) and B (checking), their ratio (target <= 1.5); the time
 * B took to check every key, that every key was checked (ListKeys), the most keys the fake saw in
 * flight at once (must not exceed the concurrency), and the servers' RSS side by side (the
 * checker's memory is what B holds beyond A).
 *
 *   npm run build && npx tsx bench/checker.bench.ts [--quick]
 *   npm run bench -- --only=checker             (inside the whole suite)
 *
 * Not a test: figures depend on the machine. BENCHMARKS.md records them.
 */
import * as http from "node:http";
import * as v8 from "node:v8";
import * as vm from "node:vm";
import { existsSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { KeyPoolService, KeyState } from "../gen/ts/keypool/v1/keypool_pb";
import { CHECKED_PROVIDERS } from "../src/checker/upstream-check";
import { KeyChecker } from "../src/checker/key-checker";
import { systemClock } from "../src/domain/clock";
import { KeyPool } from "../src/domain/key-pool";
import { silentLogger } from "../src/log";
import { coreLayout, sleep, start, type Started } from "./lib/children";
import { MAIN, ROOT, startKeypool, type ServerHandle } from "./lib/keypool-server";
import { fakeUpstreamEnv } from "../test/support/checker-safety";

const FAKE_MAIN = path.join(ROOT, "dist/src/fake-upstream/main.js");
const CONCURRENCY = 8;
const TARGET_RATIO = 1.5;
/** Behaviours every key of the run has, in turn: every one of them ends in a completed check. */
const MIX = ["working", "working", "working", "working", "trial", "32k-quirk", "revoked", "over-quota", "terminated", "rate-limited"];
/** Lease calls in flight, and the pause each caller takes between calls (a steady ~1,000/s). */
const CALLERS = 8;
const PAUSE_MS = 8;

export interface CheckerBenchResult {
  keys: number;
  idle: { p50Ms: number; p99Ms: number; calls: number };
  checking: { p50Ms: number; p99Ms: number; calls: number };
  p50Ratio: number;
  p99Ratio: number;
  checkedDuringWindows: number;
  allCheckedAfterS: number;
  unchecked: number;
  states: Record<string, number>;
  fake: { requests: number; maxKeysInFlight: number; maxInFlight: number };
  rssMiB: { idleServer: number; checkingServerPeak: number; checkingServerEnd: number };
  heap: CheckerHeap;
}

/** The checker's own heap, in this process, with checks that answer at once. */
export interface CheckerHeap {
  keys: number;
  /** Heap per key of the running checker, and of what its findings added to the pool. */
  checkerBytesPerKey: number;
  /** Heap growth from the first round of checks to the third: what a leak would show. */
  growthAfterRechecksBytes: number;
}

const gc: () => void = (() => {
  v8.setFlagsFromString("--expose-gc");
  return vm.runInNewContext("gc") as () => void;
})();

function heapUsed(): number {
  gc();
  gc();
  return process.memoryUsage().heapUsed;
}

/**
 * The pool and the checker in this process, `keys` keys, checks that answer at once with a
 * finding. Heap before the checker starts, then after each of three rounds (all keys checked,
 * then RecheckKeys of all): the checker holds a bounded amount per key, and rechecks add nothing.
 */
export async function measureCheckerHeap(keys: number): Promise<CheckerHeap> {
  const pool = new KeyPool({ clock: systemClock });
  pool.addKeys(Array.from({ length: keys }, (_, i) => ({ provider: "openai" as const, key: `sk-heap-${String(i).padStart(40, "0")}` })));
  const withoutChecker = heapUsed();
  const checker = new KeyChecker({
    pool,
    clock: systemClock,
    logger: silentLogger,
    checks: CHECKED_PROVIDERS,
    concurrency: CONCURRENCY,
    periodMs: 3_600_000,
    intervalMs: 3000,
    check: async () => ({
      kind: "checked",
      finding: { state: "active", modelFamilies: ["turbo", "gpt4", "gpt4o"], trial: false, organizationId: "org-heap" },
      warnings: [],
    }),
  });
  checker.start();
  const rounds: number[] = [];
  for (let round = 0; round < 3; round++) {
    if (round > 0) pool.markForCheck();
    while (checker.pendingFirstChecks > 0 || checker.checksInFlight > 0) await sleep(5);
    rounds.push(heapUsed());
  }
  checker.close();
  pool.close();
  return {
    keys,
    checkerBytesPerKey: Math.max(0, rounds[2] - withoutChecker) / keys,
    growthAfterRechecksBytes: rounds[2] - rounds[0],
  };
}

function fakeStats(port: number): Promise<{ requests: number; maxKeysInFlight: number; maxInFlight: number; keysSeen: number }> {
  return new Promise((resolve, reject) => {
    http
      .get({ host: "127.0.0.1", port, path: "/fake/stats" }, (res) => {
        let body = "";
        res.setEncoding("utf8").on("data", (d: string) => (body += d));
        res.on("end", () => resolve(JSON.parse(body)));
      })
      .on("error", reject);
  });
}

async function startFake(cpus: string | undefined): Promise<{ proc: Started; port: number; url: string }> {
  const proc = start(process.execPath, [FAKE_MAIN, "--port", "0", "--latency", "30ms"], cpus, { cwd: ROOT });
  const until = Date.now() + 30_000;
  for (;;) {
    const m = /"url":"(http:\/\/127\.0\.0\.1:(\d+))"/.exec(proc.stdout());
    if (m) return { proc, port: Number(m[2]), url: m[1] };
    if (Date.now() > until || proc.child.exitCode !== null) throw new Error(`the fake upstream did not start:\n${proc.stderr()}`);
    await sleep(20);
  }
}

function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];
}

/** Lease latencies (ms) over `windowMs` of steady calls. */
async function leaseWindow(server: ServerHandle, windowMs: number): Promise<{ latencies: number[]; errors: number }> {
  const client = createClient(KeyPoolService, createGrpcTransport({ baseUrl: `http://127.0.0.1:${server.port}` }));
  const latencies: number[] = [];
  let errors = 0;
  const until = performance.now() + windowMs;
  await Promise.all(
    Array.from({ length: CALLERS }, async () => {
      while (performance.now() < until) {
        const t0 = performance.now();
        try {
          await client.lease({ model: "gpt-3.5-turbo" });
          latencies.push(performance.now() - t0);
        } catch {
          errors++;
        }
        await sleep(PAUSE_MS);
      }
    }),
  );
  return { latencies, errors };
}

async function checkedCount(server: ServerHandle): Promise<{ checked: number; total: number; states: Record<string, number> }> {
  const client = createClient(KeyPoolService, createGrpcTransport({ baseUrl: `http://127.0.0.1:${server.port}` }));
  const { keys } = await client.listKeys({}, { timeoutMs: 60_000 });
  const states: Record<string, number> = {};
  for (const k of keys) states[KeyState[k.state]] = (states[KeyState[k.state]] ?? 0) + 1;
  return { checked: keys.filter((k) => k.lastChecked !== undefined).length, total: keys.length, states };
}

export async function measureChecker(options: { quick: boolean; log: (line: string) => void }): Promise<CheckerBenchResult> {
  if (!existsSync(MAIN) || !existsSync(FAKE_MAIN)) throw new Error("dist/ is missing: run 'npm run build' first");
  const keys = options.quick ? 2000 : 10_000;
  const rounds = options.quick ? 2 : 3;
  const windowMs = options.quick ? 2000 : 4000;
  const cores = coreLayout();
  const dir = mkdtempSync(path.join(os.tmpdir(), "keypool-bench-checker-"));
  const keysFile = path.join(dir, "keys.json");
  writeFileSync(
    keysFile,
    JSON.stringify(Array.from({ length: keys }, (_, i) => ({ provider: "openai", key: `sk-fake-${MIX[i % MIX.length]}-${String(i).padStart(36, "0")}` }))),
  );
  const fake = await startFake(cores.load);
  const servers: ServerHandle[] = [];
  try {
    const idle = await startKeypool({ env: { KEYPOOL_KEYS_FILE: keysFile, KEYPOOL_CHECK_KEYS: "false" }, cpus: cores.server });
    servers.push(idle);
    // Warm both paths before B starts checking.
    await leaseWindow(idle, 1000);
    const checkingStart = performance.now();
    const checking = await startKeypool({
      env: {
        KEYPOOL_KEYS_FILE: keysFile,
        KEYPOOL_CHECK_KEYS: "true",
        ...fakeUpstreamEnv(fake.url),
        KEYPOOL_CHECK_CONCURRENCY: String(CONCURRENCY),
      },
      cpus: cores.server,
    });
    servers.push(checking);
    await leaseWindow(checking, 1000);
    const idleLat: number[] = [];
    const checkLat: number[] = [];
    let checkedDuringWindows = 0;
    let peakRss = 0;
    for (let r = 0; r < rounds; r++) {
      const a = await leaseWindow(idle, windowMs);
      idleLat.push(...a.latencies);
      const before = (await fakeStats(fake.port)).keysSeen;
      const b = await leaseWindow(checking, windowMs);
      checkLat.push(...b.latencies);
      const after = (await fakeStats(fake.port)).keysSeen;
      checkedDuringWindows += after - before;
      peakRss = Math.max(peakRss, checking.rssMiB());
      options.log(
        `  round ${r + 1}: idle ${a.latencies.length} leases (${a.errors} errors), checking ${b.latencies.length} leases (${b.errors} errors), ${after - before} keys checked during the window`,
      );
    }
    // Both servers answer the same ListKeys calls, so that their RSS differs by the checker only.
    const poll = async () => (await Promise.all([checkedCount(checking), checkedCount(idle)]))[0];
    let progress = await poll();
    while (progress.checked < progress.total) {
      peakRss = Math.max(peakRss, checking.rssMiB());
      options.log(`  checked ${progress.checked} of ${progress.total}`);
      await sleep(2000);
      progress = await poll();
    }
    const allCheckedAfterS = (performance.now() - checkingStart) / 1000;
    const stats = await fakeStats(fake.port);
    idleLat.sort((x, y) => x - y);
    checkLat.sort((x, y) => x - y);
    const idleP50 = percentile(idleLat, 50);
    const idleP99 = percentile(idleLat, 99);
    const checkP50 = percentile(checkLat, 50);
    const checkP99 = percentile(checkLat, 99);
    return {
      keys,
      idle: { p50Ms: idleP50, p99Ms: idleP99, calls: idleLat.length },
      checking: { p50Ms: checkP50, p99Ms: checkP99, calls: checkLat.length },
      p50Ratio: checkP50 / idleP50,
      p99Ratio: checkP99 / idleP99,
      checkedDuringWindows,
      allCheckedAfterS,
      unchecked: progress.total - progress.checked,
      states: progress.states,
      fake: { requests: stats.requests, maxKeysInFlight: stats.maxKeysInFlight, maxInFlight: stats.maxInFlight },
      rssMiB: { idleServer: idle.rssMiB(), checkingServerPeak: peakRss, checkingServerEnd: checking.rssMiB() },
      heap: await measureCheckerHeap(keys),
    };
  } finally {
    for (const s of servers) await s.stop();
    await fake.proc.kill();
    rmSync(dir, { recursive: true, force: true });
  }
}

export async function run(options: { quick: boolean; log: (line: string) => void }) {
  const r = await measureChecker(options);
  return [
    { name: `keys checked (${r.keys} behind the fake upstream)`, value: `${r.keys - r.unchecked} of ${r.keys} in ${r.allCheckedAfterS.toFixed(0)} s`, met: r.unchecked === 0, target: "all" },
    { name: "most keys in flight at the fake upstream", value: String(r.fake.maxKeysInFlight), target: `<= ${CONCURRENCY}`, met: r.fake.maxKeysInFlight <= CONCURRENCY },
    { name: "Lease p50 idle / while checking", value: `${r.idle.p50Ms.toFixed(2)} ms / ${r.checking.p50Ms.toFixed(2)} ms` },
    { name: "Lease p50 while checking / idle", value: r.p50Ratio.toFixed(2), target: `<= ${TARGET_RATIO}`, met: r.p50Ratio <= TARGET_RATIO },
    { name: "Lease p99 while checking / idle", value: r.p99Ratio.toFixed(2), target: `<= ${TARGET_RATIO}`, met: r.p99Ratio <= TARGET_RATIO },
    {
      name: `checker heap per key (${r.heap.keys} keys, in process)`,
      value: `${r.heap.checkerBytesPerKey.toFixed(0)} bytes; growth over two full rechecks ${(r.heap.growthAfterRechecksBytes / 1024).toFixed(0)} KiB`,
    },
    { name: "server RSS, checker off / on (peak, end)", value: `${r.rssMiB.idleServer} / ${r.rssMiB.checkingServerPeak}, ${r.rssMiB.checkingServerEnd} MiB` },
  ];
}

if (require.main === module) {
  const quick = process.argv.includes("--quick");
  measureChecker({ quick, log: (line) => process.stderr.write(line + "\n") })
    .then((r) => {
      process.stdout.write(JSON.stringify(r, null, 2) + "\n");
      process.exit(0);
    })
    .catch((err: unknown) => {
      process.stderr.write(`${err instanceof Error ? err.stack : String(err)}\n`);
      process.exit(1);
    });
}
