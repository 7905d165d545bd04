/**
 * WatchKeys at scale, the two figures of BENCHMARKS.md's "Watchers: memory and open storm":
 *
 * 1. Memory: keypool with 100,000 keys under Lease load (every key changes: leases go to the
 *    least recently used key), first with no watcher, then with 1,000 watchers that never read
 *    (bench/watch-audience.ts, mode idle). The server's RSS with them minus its RSS without them
 *    is what the watchers cost.
 * 2. Open storm: keypool with 1,000 keys; a probe calls GetLockoutPeriod back to back, first with
 *    nothing else going on (idle), then while 1,000 dashboards open WatchKeys at once and read
 *    their snapshots (mode read). The probe's p99 while they open, over its idle p99.
 *
 *     npm run build && npx tsx bench/watch-memory.bench.ts [--quick] [--port=main|native|both]
 *       [--only=storm|memory] [--baseline=<another source tree, built>] [--server-flag=<flag>]
 *
 * `--port` chooses which listener the watchers, the Lease load and the probe use: the main port
 * (connect-node, the default), the native gRPC port (grpc-js, KEYPOOL_GRPC_PORT), or both in turn.
 * `--baseline` measures another build (its tree's dist/src/main.js) beside this one, round by
 * round with the order alternating, so that a change is compared on the same machine at the same
 * time. `--server-flag=<flag>` (repeatable, diagnosis) gives this build's storm server a node or V8
 * flag and not the baseline's: with `--baseline=.` it measures the flag against none.
 *
 * Server pinned to core 0, watchers and h2load to the other core (taskset), as in bench/run.ts.
 */
import { create, toBinary } from "@bufbuild/protobuf";
import { mkdtempSync, rmSync } from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { GetLockoutPeriodRequestSchema } from "../gen/ts/keypool/v1/keypool_pb";
import { coreLayout, sleep, start, type CoreLayout } from "./lib/children";
import { connect, unary } from "./lib/grpc-raw";
import { h2load } from "./lib/h2load";
import { BENCH_MODEL, LEASE, leaseRequestBytes, poolTotals } from "./lib/keypool-rpc";
import { ROOT, startKeypool } from "./lib/keypool-server";
import { writeKeysFile } from "./lib/keys-file";
import { percentile } from "./lib/stats";

const LOCKOUT = "/keypool.v1.KeyPoolService/GetLockoutPeriod";

/** Which of keypool's listeners a measurement drives. */
export type Listener = "main" | "native";

function listenerPort(server: { port: number; grpcPort?: number }, listener: Listener): number {
  return listener === "native" ? server.grpcPort! : server.port;
}

export interface WatchMemoryResult {
  keys: number;
  watchers: number;
  leaseRate: number;
  baselineRssMiB: number;
  withWatchersRssMiB: number;
  addedRssMiB: number;
  /** The same number of Health/Watch streams that never read: what the transport alone costs. */
  healthStreamsRssMiB: number;
  /**
   * A server where one watch opened and closed before the load: the hub fills its key slots at
   * its first watch (src/watch/watch-hub.ts fillSlots), so this separates what the first watch
   * costs from what further watchers add. The target is measured against `baselineRssMiB`, a
   * server that never had a watch.
   */
  afterOneWatchRssMiB: number;
  /** RSS added by the watchers over a server whose hub already serves: what each watcher costs. */
  addedOverOneWatchRssMiB: number;
  leasesWithout: number;
  leasesWith: number;
  openMs: number;
}

export interface OpenStormResult {
  keys: number;
  watchers: number;
  idleP50Ms: number;
  idleP99Ms: number;
  stormP50Ms: number;
  stormP99Ms: number;
  ratioP99: number;
  probesIdle: number;
  probesStorm: number;
  syncedMs: number;
}

/**
 * The watchers, on the load core. In the open storm they run at the lowest priority: the probe
 * shares that core, and what is measured is the server's answer time, not how long the probe
 * waits for the core behind 1,000 dashboards decoding their snapshots.
 */
export function audience(port: number, watchers: number, mode: "idle" | "read", cores: CoreLayout, method: "watch" | "health" = "watch") {
  const config = { port, watchers, connections: Math.ceil(watchers / 100), mode, batch: true, method };
  const niceness = mode === "read" ? 19 : undefined;
  return start(process.execPath, ["--import", "tsx", path.join(ROOT, "bench", "watch-audience.ts"), JSON.stringify(config)], cores.load, { cwd: ROOT, niceness });
}

export async function waitFor(proc: ReturnType<typeof audience>, pattern: RegExp, timeoutMs: number): Promise<RegExpExecArray> {
  const until = Date.now() + timeoutMs;
  for (;;) {
    const m = pattern.exec(proc.stdout());
    if (m) return m;
    if (proc.child.exitCode !== null) throw new Error(`watch audience exited:\n${proc.stderr().slice(-3000)}`);
    if (Date.now() > until) throw new Error(`watch audience: no ${pattern} in ${timeoutMs} ms\n${proc.stderr().slice(-2000)}`);
    await sleep(20);
  }
}

/** Samples the server's RSS every second while `during` runs; the largest of the last `tail`. */
async function rssWhile(rss: () => number, during: Promise<unknown>, tail: number): Promise<number> {
  const samples: number[] = [];
  let done = false;
  void during.finally(() => (done = true));
  while (!done) {
    samples.push(rss());
    await sleep(1000);
  }
  await during;
  return Math.max(...samples.slice(-tail));
}

/**
 * One server, fresh, under the Lease load, with `streams` of the given kind that never read; the
 * largest RSS of the load's last 10 s. A fresh server per kind: RSS rarely shrinks, so phases run
 * one after the other in one process would each inherit the last one's high-water mark.
 */
async function rssWith(
  kind: "none" | "one-watch" | "watch" | "health",
  opts: { keysFile: string; watchers: number; leaseRate: number; durationS: number; listener: Listener; main?: string },
  cores: CoreLayout,
): Promise<{ rssMiB: number; leases: number; openMs: number }> {
  const server = await startKeypool({
    main: opts.main,
    env: { KEYPOOL_KEYS_FILE: opts.keysFile, KEYPOOL_STATE: "memory", KEYPOOL_MAX_WATCHERS: String(opts.watchers + 10) },
    cpus: cores.server,
    deadlineMs: 180_000,
    nativePort: opts.listener === "native",
  });
  const port = listenerPort(server, opts.listener);
  if (kind === "one-watch") {
    const one = audience(port, 1, "idle", cores, "watch");
    await waitFor(one, /OPEN (\d+)/, 60_000);
    await one.kill();
  }
  const streams = kind === "none" || kind === "one-watch" ? undefined : audience(port, opts.watchers, "idle", cores, kind);
  try {
    const openMs = streams ? Number((await waitFor(streams, /OPEN (\d+)/, 120_000))[1]) : 0;
    const before = await poolTotals(server.port);
    const load = h2load(
      port,
      LEASE,
      leaseRequestBytes(),
      { requests: 0, connections: 2, streamsPerConnection: 16, durationS: opts.durationS, rpsPerConnection: Math.round(opts.leaseRate / 2) },
      cores.load,
    );
    const rssMiB = await rssWhile(server.rssMiB, load, 10);
    const after = await poolTotals(server.port);
    return { rssMiB, leases: after.leases - before.leases, openMs };
  } finally {
    await streams?.kill();
    await server.stop();
  }
}

export async function measureWatchMemory(opts: { keys: number; watchers: number; leaseRate: number; durationS: number; listener: Listener; main?: string }, cores: CoreLayout, log: (s: string) => void): Promise<WatchMemoryResult> {
  const dir = mkdtempSync(path.join(os.tmpdir(), "keypool-watch-memory-"));
  const keysFile = path.join(dir, "keys.json");
  writeKeysFile(keysFile, opts.keys);
  try {
    const shape = { keysFile, watchers: opts.watchers, leaseRate: opts.leaseRate, durationS: opts.durationS, listener: opts.listener, main: opts.main };
    const none = await rssWith("none", shape, cores);
    log(`  memory: ${opts.keys} keys, no watchers, ${none.leases} leases: RSS ${none.rssMiB.toFixed(0)} MiB`);
    const oneWatch = await rssWith("one-watch", shape, cores);
    log(`  memory: ${opts.keys} keys, one watch opened and closed before the load, ${oneWatch.leases} leases: RSS ${oneWatch.rssMiB.toFixed(0)} MiB`);
    const health = await rssWith("health", shape, cores);
    log(`  memory: ${opts.watchers} Health/Watch streams that never read instead, ${health.leases} leases: RSS ${health.rssMiB.toFixed(0)} MiB`);
    const watch = await rssWith("watch", shape, cores);
    log(`  memory: ${opts.watchers} WatchKeys watchers that never read (open in ${watch.openMs} ms), ${watch.leases} leases: RSS ${watch.rssMiB.toFixed(0)} MiB`);
    return {
      keys: opts.keys,
      watchers: opts.watchers,
      leaseRate: opts.leaseRate,
      baselineRssMiB: none.rssMiB,
      withWatchersRssMiB: watch.rssMiB,
      addedRssMiB: watch.rssMiB - none.rssMiB,
      healthStreamsRssMiB: health.rssMiB,
      afterOneWatchRssMiB: oneWatch.rssMiB,
      addedOverOneWatchRssMiB: watch.rssMiB - oneWatch.rssMiB,
      leasesWithout: none.leases,
      leasesWith: watch.leases,
      openMs: watch.openMs,
    };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** Calls GetLockoutPeriod back to back until `stop` resolves; the latencies in ms. */
async function probe(port: number, stop: Promise<unknown>): Promise<number[]> {
  const session = await connect(port);
  const request = toBinary(GetLockoutPeriodRequestSchema, create(GetLockoutPeriodRequestSchema, { model: BENCH_MODEL }));
  const latencies: number[] = [];
  let done = false;
  void stop.finally(() => (done = true));
  try {
    while (!done) {
      const t = performance.now();
      const reply = await unary(session, LOCKOUT, request, 60_000);
      if (reply.grpcStatus !== 0) throw new Error(`GetLockoutPeriod: ${reply.grpcStatus} ${reply.grpcMessage}`);
      latencies.push(performance.now() - t);
      await sleep(5);
    }
  } finally {
    session.destroy();
  }
  return latencies;
}

export async function measureOpenStorm(opts: { keys: number; watchers: number; idleS: number; nodeArgs?: string[]; listener: Listener; main?: string }, cores: CoreLayout, log: (s: string) => void): Promise<OpenStormResult> {
  const dir = mkdtempSync(path.join(os.tmpdir(), "keypool-open-storm-"));
  const keysFile = path.join(dir, "keys.json");
  writeKeysFile(keysFile, opts.keys);
  const server = await startKeypool({
    env: { KEYPOOL_KEYS_FILE: keysFile, KEYPOOL_STATE: "memory", KEYPOOL_MAX_WATCHERS: String(opts.watchers + 10) },
    cpus: cores.server,
    nodeArgs: opts.nodeArgs,
    nativePort: opts.listener === "native",
    main: opts.main,
  });
  const port = listenerPort(server, opts.listener);
  try {
    await probe(port, sleep(1000)); // warm-up
    const idle = await probe(port, sleep(opts.idleS * 1000));
    const watchers = audience(port, opts.watchers, "read", cores);
    try {
      const synced = waitFor(watchers, /SYNCED (\d+)/, 300_000);
      const storm = await probe(port, synced);
      const syncedMs = Number((await synced)[1]);
      const result: OpenStormResult = {
        keys: opts.keys,
        watchers: opts.watchers,
        idleP50Ms: percentile(idle, 0.5),
        idleP99Ms: percentile(idle, 0.99),
        stormP50Ms: percentile(storm, 0.5),
        stormP99Ms: percentile(storm, 0.99),
        ratioP99: percentile(storm, 0.99) / percentile(idle, 0.99),
        probesIdle: idle.length,
        probesStorm: storm.length,
        syncedMs,
      };
      log(
        `  open storm: ${opts.watchers} watchers on ${opts.keys} keys synced in ${syncedMs} ms; GetLockoutPeriod p99 ${result.stormP99Ms.toFixed(1)} ms (p50 ${result.stormP50Ms.toFixed(1)}) against ${result.idleP99Ms.toFixed(1)} ms idle (p50 ${result.idleP50Ms.toFixed(1)}): ${result.ratioP99.toFixed(2)}x, ${storm.length} probes`,
      );
      return result;
    } finally {
      await watchers.kill();
    }
  } finally {
    await server.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

export interface RunOptions {
  quick: boolean;
  log: (s: string) => void;
  listeners?: Listener[];
  /** Another build's dist/src/main.js, measured in the same rounds (order alternating). */
  baseline?: string;
  /** Only one of the two measurements. */
  only?: "storm" | "memory";
  /** Node or V8 flags for this build's server in the storm, not the baseline's (diagnosis; `--baseline=.` sets a flag against none). */
  serverFlags?: string[];
}

export async function run(options: RunOptions) {
  const cores = coreLayout();
  options.log(`watchers: ${cores.note}`);
  const flags = options.serverFlags ?? [];
  const builds: { label: string; main?: string; nodeArgs?: string[] }[] = [{ label: flags.length ? `this build, ${flags.join(" ")}` : "this build", nodeArgs: flags }];
  if (options.baseline) builds.push({ label: "baseline", main: options.baseline });
  const rows = [];
  for (const listener of options.listeners ?? ["main"]) {
    const on = listener === "native" ? "native port" : "main port";
    if (options.only !== "memory") {
      // The ratio of two p99s on a shared machine is noisy: three storms, the median one reported.
      const storms = new Map<string, OpenStormResult[]>(builds.map((b) => [b.label, []]));
      for (let i = 0; i < (options.quick ? 1 : 3); i++) {
        for (const build of i % 2 === 0 ? builds : [...builds].reverse()) {
          options.log(`  ${build.label}:`);
          storms.get(build.label)!.push(await measureOpenStorm({ keys: 1000, watchers: 1000, idleS: options.quick ? 3 : 10, listener, main: build.main, nodeArgs: build.nodeArgs }, cores, options.log));
        }
      }
      for (const build of builds) {
        const all = storms.get(build.label)!;
        const storm = [...all].sort((a, b) => a.ratioP99 - b.ratioP99)[Math.floor(all.length / 2)]!;
        rows.push({
          name: `${on}, ${build.label}: GetLockoutPeriod p99 while ${storm.watchers} watchers open at once (${storm.keys} keys), over idle (median of ${all.length})`,
          value: `${storm.ratioP99.toFixed(2)}x (${storm.stormP99Ms.toFixed(1)} / ${storm.idleP99Ms.toFixed(1)} ms; all: ${all.map((s) => s.ratioP99.toFixed(2)).join(", ")}; synced in ${all.map((s) => s.syncedMs).join(", ")} ms)`,
          target: "<= 2x",
          met: storm.ratioP99 <= 2,
        });
      }
    }
    if (options.only !== "storm") {
      for (const build of builds) {
        options.log(`  ${build.label}:`);
        const memory = await measureWatchMemory(
          { keys: options.quick ? 10_000 : 100_000, watchers: 1000, leaseRate: 2000, durationS: options.quick ? 15 : 60, listener, main: build.main },
          cores,
          options.log,
        );
        rows.push({
          name: `${on}, ${build.label}: RSS added by ${memory.watchers} watchers that never read, ${memory.keys} keys under Lease load (${memory.leasesWith} leases), over a server that never had a watch`,
          value: `${memory.addedRssMiB.toFixed(0)} MiB (${memory.baselineRssMiB.toFixed(0)} -> ${memory.withWatchersRssMiB.toFixed(0)}; over a server after one watch (${memory.afterOneWatchRssMiB.toFixed(0)} MiB): +${memory.addedOverOneWatchRssMiB.toFixed(0)} MiB; as many Health/Watch streams: +${(memory.healthStreamsRssMiB - memory.baselineRssMiB).toFixed(0)} MiB)`,
          target: "< 200 MB",
          met: memory.addedRssMiB * 1.048576 < 200,
        });
      }
    }
  }
  return rows;
}

function listenersArg(argv: string[]): Listener[] {
  const given = argv.find((a) => a.startsWith("--port="))?.slice("--port=".length) ?? "main";
  if (given === "both") return ["main", "native"];
  if (given === "main" || given === "native") return [given];
  throw new Error(`--port must be main, native or both, not ${JSON.stringify(given)}`);
}

if (require.main === module) {
  const value = (name: string) => process.argv.find((a) => a.startsWith(`--${name}=`))?.slice(name.length + 3);
  const only = value("only");
  if (only !== undefined && only !== "storm" && only !== "memory") throw new Error(`--only must be storm or memory, not ${JSON.stringify(only)}`);
  const baseline = value("baseline");
  run({
    quick: process.argv.includes("--quick"),
    log: (s) => console.log(s),
    listeners: listenersArg(process.argv),
    only,
    baseline: baseline === undefined ? undefined : path.resolve(baseline, "dist", "src", "main.js"),
    serverFlags: process.argv.filter((a) => a.startsWith("--server-flag=")).map((a) => a.slice("--server-flag=".length)),
  }).then(
    (rows) => console.log(JSON.stringify(rows, null, 2)),
    (error) => {
      console.error(error);
      process.exit(1);
    },
  );
}
