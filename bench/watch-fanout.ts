/**
 * Section 3: WatchKeys fan-out. keypool with 10 OpenAI keys (the Lease load's) and one Anthropic
 * marker key; 1,000 WatchKeys subscribers (bench/watch-fanout-client.ts, on the load core) while
 * the same process leases at a fixed rate (`leaseRate`, or "half-max": half the Lease maximum
 * h2load measures on this server, warmed by a first run, just before the subscribers open).
 * Every Lease changes a key, so each subscriber receives a stream of updates (coalesced per key
 * within KEYPOOL_WATCH_COALESCE); the probe changes of the marker key measure change-to-arrival
 * time.
 * The Lease load runs `leadS` (5 s) before the probes that count: a server that has not yet run
 * this mix spends its first second or two optimizing the code for it on its one core, and the
 * probes of that onset are reported apart, beside the steady state's.
 */
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { CoreLayout, cpuMs, sleep, start } from "./lib/children";
import { h2load, LoadResult } from "./lib/h2load";
import { findKeyHash, LEASE, leaseRequestBytes, poolTotals } from "./lib/keypool-rpc";
import { ROOT, startKeypool } from "./lib/keypool-server";
import type { PacedLeaseResult } from "./lib/paced-lease";
import { collections, LOOP_STALLS, stallsOf } from "./lib/server-trace";
import { fmt, summarize } from "./lib/stats";
import { monotonicMs, type FanoutClientReport } from "./watch-fanout-client";

export interface FanoutResult {
  /** Which port the subscribers and the Lease load used: the main port or the native gRPC port. */
  port: "main" | "native";
  /** Whether the subscribers asked for batched changes (WatchKeysRequest.batch). */
  batch: boolean;
  subscribers: number;
  coalesceMs: number;
  leaseRateTarget: number;
  /** The Lease maximum measured on this server before the subscribers opened (leaseRate "half-max"). */
  leaseMaxRps?: number;
  lease: LoadResult;
  leasesGranted: number;
  /** Probes that count (sent after the Lease load's lead): every latency figure below is theirs. */
  probes: number;
  samples: number;
  /** Every change-to-arrival time of those probes, in ms: for percentiles over several passes. */
  latencies: Float64Array;
  missed: number;
  /** Arrivals that came as a later probe's state, coalesced within one window (counted with their own send time). */
  superseded: number;
  p50Ms: number;
  p99Ms: number;
  maxMs: number;
  lastSubscriberP50Ms: number;
  lastSubscriberP99Ms: number;
  /** How long the Lease load ran before the probes that count (0 without Lease load). */
  leadMs: number;
  /**
   * The probes sent during that lead: the onset of the load on this server, when V8 first
   * optimizes the code of this mix of Leases and batched messages (BENCHMARKS.md §5).
   */
  onset?: { probes: number; p50Ms: number; p99Ms: number; maxMs: number };
  /**
   * Probes whose own p99 (over the subscribers) exceeded 250 ms: whether the overall p99 is a few
   * slow probes (a stall) or every probe's spread.
   */
  probesOver250Ms: number;
  bytesReceived: number;
  /** WatchKeys messages the 1,000 raw subscribers received per second, from READY to the end. */
  messagesPerSec: number;
  /** Share of one core the server used over the same span (from /proc/<pid>/stat). */
  serverCpuShare: number;
  /** Share of one core the load generator (subscribers, probes and Lease load; all its processes) used from GO to the end. */
  generatorCpuShare: number;
  /** Processes the subscribers were split over (1: one process holds them all and drives the load). */
  clientProcesses: number;
  /** The worst of the client processes' event-loop delay p99 and maximum: how late a subscriber can have read its socket. */
  generatorLoopDelayP99Ms: number;
  generatorLoopDelayMaxMs: number;
  /** With `traceGc`: the server's mark-compacts while the subscribers were counting, and their total pause. */
  markCompacts?: number;
  markCompactMs?: number;
  scavenges?: number;
  scavengeMs?: number;
  /** Server CPU time per message delivered (meaningful when there is no Lease load). */
  serverCpuMicrosPerMessage: number;
  streamErrors: number;
  verifier: { messages: number; outOfOrder: number; probesSeen: number; error: string };
  serverRssMiB: number;
  /**
   * With `traceProbes`: a line per probe, the onset's too: when it was sent, its arrivals, and
   * the server's event-loop stalls and collections while it travelled.
   */
  probeTimeline?: string[];
  /** The span the subscribers were counting, on the monotonic clock in µs (a CPU profile's clock). */
  countingFromUs: number;
  countingToUs: number;
}

export async function measureFanout(
  keysFile: string,
  opts: {
    subscribers: number;
    coalesceMs: number;
    leaseRate: number | "half-max";
    durationS: number;
    probeIntervalMs: number;
    /** How long the Lease load runs before the probes that count; default 5 s (none without Lease load). */
    leadS?: number;
    main?: string;
    nodeArgs?: string[];
    port?: "main" | "native";
    batch?: boolean;
    /**
     * Processes to split the subscribers over (default 1: one process holds all of them and also
     * sends the probes and the Lease load, so its own event loop's delays add to every arrival).
     */
    clientProcesses?: number;
    /** Runs the server with --trace-gc and counts its collections while the subscribers count. */
    traceGc?: boolean;
    /** Runs the server with loop-stalls.cjs and --trace-gc and returns the probes' timeline (probeTimeline). */
    traceProbes?: boolean;
  },
  cores: CoreLayout,
  env: Record<string, string>,
  log: (s: string) => void,
): Promise<FanoutResult> {
  const server = await startKeypool({
    env: {
      ...env,
      KEYPOOL_KEYS_FILE: keysFile,
      KEYPOOL_WATCH_COALESCE: `${opts.coalesceMs}ms`,
      KEYPOOL_MAX_WATCHERS: String(opts.subscribers + 10),
    },
    cpus: cores.server,
    main: opts.main,
    nodeArgs: [...(opts.nodeArgs ?? []), ...(opts.traceProbes ? ["--require", LOOP_STALLS] : []), ...(opts.traceGc || opts.traceProbes ? ["--trace-gc"] : [])],
    nativePort: opts.port === "native",
  });
  const port = opts.port ?? "main";
  const rpcPort = port === "native" ? server.grpcPort! : server.port;
  let reportDir: string | undefined;
  try {
    const markerKeyHash = await findKeyHash(rpcPort, "anthropic");
    let leaseMaxRps: number | undefined;
    if (opts.leaseRate === "half-max") {
      // A fresh server's first Leases run unoptimized code: measured cold, the maximum (and so the
      // load) came out anywhere from 5,300 to 11,300/s on the same build. So a first run warms it.
      const shape = { connections: 4, streamsPerConnection: 16 };
      await h2load(rpcPort, LEASE, leaseRequestBytes(), { requests: 10_000, ...shape }, cores.load);
      const max = await h2load(rpcPort, LEASE, leaseRequestBytes(), { requests: 20_000, ...shape }, cores.load);
      leaseMaxRps = max.rps;
      log(`  fan-out (${port} port): Lease maximum on this server ${Math.round(max.rps)}/s (h2load, 4 connections x 16 streams, no subscribers, after 10,000 Leases to warm it)`);
    }
    const leaseRate = opts.leaseRate === "half-max" ? Math.round(leaseMaxRps! / 2) : opts.leaseRate;
    const leadMs = leaseRate > 0 ? (opts.leadS ?? 5) * 1000 : 0;
    const before = await poolTotals(rpcPort);
    const processes = Math.max(1, Math.min(opts.clientProcesses ?? 1, opts.subscribers));
    const clientReports = (reportDir = mkdtempSync(path.join(os.tmpdir(), "keypool-fanout-clients-")));
    const connections = Math.max(1, Math.ceil(opts.subscribers / 100));
    const clients = Array.from({ length: processes }, (_, i) => {
      const share = Math.floor(opts.subscribers / processes) + (i < opts.subscribers % processes ? 1 : 0);
      const config = {
        port: rpcPort,
        subscribers: share,
        connections: Math.max(1, Math.round((connections * share) / opts.subscribers)),
        markerKeyHash,
        warmupMs: 1000,
        durationMs: opts.durationS * 1000,
        probeIntervalMs: opts.probeIntervalMs,
        batch: opts.batch ?? false,
        leaseRate,
        leadMs,
        leaseConnections: 2,
        drive: i === 0,
        reportFile: path.join(clientReports, `client-${i}.json`),
      };
      return start(process.execPath, ["--import", "tsx", path.join(ROOT, "bench", "watch-fanout-client.ts"), JSON.stringify(config)], cores.load, {
        cwd: ROOT,
        stdio: ["pipe", "pipe", "pipe"],
      });
    });
    while (!clients.every((c) => c.stdout().includes("READY"))) {
      const failed = clients.find((c) => c.child.exitCode !== null);
      if (failed) throw new Error(`fan-out client failed:\n${failed.stderr()}`);
      await sleep(5);
    }
    const gcFrom = server.proc.stdout().length;
    const cpu0 = cpuMs(server.pid);
    const wall0 = performance.now();
    const countingFromUs = Number(process.hrtime.bigint() / 1000n);
    for (const c of clients) c.child.stdin!.write("GO\n");
    const code = await clients[0]!.exited;
    for (const c of clients.slice(1)) c.child.stdin!.write("STOP\n");
    const codes = [code, ...(await Promise.all(clients.slice(1).map((c) => c.exited)))];
    const countingToUs = Number(process.hrtime.bigint() / 1000n);
    const serverCpuShare = (cpuMs(server.pid) - cpu0) / (performance.now() - wall0);
    const gc = opts.traceGc ? gcCounts(server.proc.stdout().slice(gcFrom)) : undefined;
    codes.forEach((c, i) => {
      if (c !== 0) throw new Error(`fan-out client ${i} exited with ${c}:\n${clients[i]!.stderr().slice(-3000)}`);
    });
    const reports = clients.map((_, i) => JSON.parse(readFileSync(path.join(clientReports, `client-${i}.json`), "utf8")) as FanoutClientReport);
    const result = mergeReports(reports);
    const probeTimeline = opts.traceProbes ? timelineOf(reports, server.proc.stderr(), server.proc.stdout()) : undefined;
    const paced = result.lease;
    const lease: LoadResult = paced
      ? { tool: "paced raw HTTP/2", requests: paced.sent, succeeded: paced.ok, failed: paced.failed, http2xx: paced.ok, rps: paced.rps, p50Ms: paced.p50Ms, p99Ms: paced.p99Ms }
      : { tool: "none", requests: 0, succeeded: 0, failed: 0, http2xx: 0, rps: 0, p50Ms: NaN, p99Ms: NaN };
    if (paced && paced.failed > 0) throw new Error(`fan-out: ${paced.failed} of ${paced.sent} Leases failed (${paced.firstError})`);
    const serverRssMiB = server.rssMiB();
    const after = await poolTotals(rpcPort);
    const leasesGranted = after.leases - before.leases;
    const onset = result.onset;
    log(
      `  fan-out (${port} port${opts.batch ? ", batch" : ""}): ${opts.subscribers} subscribers, ${Math.round(lease.rps)} Lease/s (target ${leaseRate}), ${result.probes} probes: p50 ${result.p50Ms.toFixed(1)} ms p99 ${result.p99Ms.toFixed(1)} ms (last subscriber p99 ${result.lastSubscriberP99Ms.toFixed(1)} ms), missed ${result.missed}, verifier ${JSON.stringify(result.verifier)}` +
        (onset ? `; onset (the first ${leadMs / 1000} s of Lease load, ${onset.probes} probes): p50 ${onset.p50Ms.toFixed(1)} ms p99 ${onset.p99Ms.toFixed(1)} ms` : ""),
    );
    // Every Lease the load generator saw succeed, and no more, was granted by the pool.
    if (leasesGranted !== lease.succeeded) {
      throw new Error(`fan-out: the load generator saw ${lease.succeeded} Leases succeed but the pool granted ${leasesGranted}`);
    }
    const serverCpuMicrosPerMessage = (serverCpuShare * 1e6) / result.messagesPerSec;
    log(
      `  fan-out: ${Math.round(result.messagesPerSec)} messages/s delivered, server busy ${(serverCpuShare * 100).toFixed(0)}% of a core, load generator ${(result.cpuShare * 100).toFixed(0)}% ` +
        `(${processes} process${processes > 1 ? "es" : ""}, event-loop delay p99 ${result.loopDelayP99Ms.toFixed(1)} ms, max ${result.loopDelayMaxMs.toFixed(1)} ms), ${serverCpuMicrosPerMessage.toFixed(0)} µs of server CPU per message` +
        (gc ? `; server GC: ${gc.markCompacts} mark-compacts (${gc.markCompactMs.toFixed(0)} ms), ${gc.scavenges} scavenges (${gc.scavengeMs.toFixed(0)} ms)` : ""),
    );
    return {
      ...result,
      port,
      batch: opts.batch ?? false,
      serverCpuShare,
      generatorCpuShare: result.cpuShare,
      clientProcesses: processes,
      generatorLoopDelayP99Ms: result.loopDelayP99Ms,
      generatorLoopDelayMaxMs: result.loopDelayMaxMs,
      ...gc,
      serverCpuMicrosPerMessage,
      coalesceMs: opts.coalesceMs,
      leadMs,
      leaseRateTarget: leaseRate,
      leaseMaxRps,
      lease,
      leasesGranted,
      serverRssMiB,
      probeTimeline,
      countingFromUs,
      countingToUs,
    };
  } finally {
    await server.stop();
    if (reportDir) rmSync(reportDir, { recursive: true, force: true });
  }
}

/**
 * The client processes' reports as one: latencies from the driver's send times and every process's
 * arrivals, the probes of the Lease load's lead (its onset) apart from those that count.
 */
function mergeReports(reports: FanoutClientReport[]) {
  const { sentAt, countedFrom } = reports[0]!;
  const latencies: number[] = [];
  const onsetLatencies: number[] = [];
  /** Per probe, the latest arrival over all subscribers, and all its latencies. */
  const lastArrival: number[] = [];
  const byProbe: number[][] = [];
  let samples = 0;
  for (const report of reports) {
    report.arrivals.forEach((times, probe) => {
      const sent = sentAt[probe];
      if (sent === undefined || !times) return;
      samples += times.length;
      if (probe < countedFrom) {
        for (const t of times) onsetLatencies.push(t - sent);
        return;
      }
      for (const t of times) {
        const latency = t - sent;
        latencies.push(latency);
        (byProbe[probe] ??= []).push(latency);
        lastArrival[probe] = Math.max(lastArrival[probe] ?? 0, latency);
      }
    });
  }
  const subscribers = reports.reduce((n, r) => n + r.subscribers, 0);
  const all = summarize(latencies);
  const perProbe = summarize(lastArrival.filter((x) => x !== undefined));
  const onset = countedFrom > 0 ? summarize(onsetLatencies) : undefined;
  const sum = (f: (r: FanoutClientReport) => number) => reports.reduce((n, r) => n + f(r), 0);
  return {
    subscribers,
    probes: sentAt.length - countedFrom,
    samples: latencies.length,
    latencies: Float64Array.from(latencies),
    missed: sentAt.length * subscribers - samples,
    superseded: sum((r) => r.superseded),
    p50Ms: all.p50Ms,
    p99Ms: all.p99Ms,
    maxMs: all.maxMs,
    lastSubscriberP50Ms: perProbe.p50Ms,
    lastSubscriberP99Ms: perProbe.p99Ms,
    onset: onset && { probes: countedFrom, p50Ms: onset.p50Ms, p99Ms: onset.p99Ms, maxMs: onset.maxMs },
    probesOver250Ms: byProbe.filter((l) => l && summarize(l).p99Ms > 250).length,
    bytesReceived: sum((r) => r.bytesReceived),
    messagesPerSec: sum((r) => r.messagesPerSec),
    streamErrors: sum((r) => r.streamErrors),
    firstStreamError: reports.map((r) => r.firstStreamError).find((e) => e) ?? "",
    verifier: reports[0]!.verifier!,
    lease: reports[0]!.lease,
    cpuShare: sum((r) => r.cpuShare),
    loopDelayP99Ms: Math.max(...reports.map((r) => r.loopDelayP99Ms)),
    loopDelayMaxMs: Math.max(...reports.map((r) => r.loopDelayMaxMs)),
  };
}

/**
 * A line per probe: when it was sent (ms after the first), whether it counts or fell in the Lease
 * load's onset, its arrivals' min / p50 / p99 over the subscribers, and what the server printed
 * between 50 ms before it was sent and its last arrival: event-loop stalls over 16 ms and
 * collections of 5 ms and more (ms after the send, length or pause).
 */
function timelineOf(reports: FanoutClientReport[], stderr: string, stdout: string): string[] {
  const { sentAt, countedFrom } = reports[0]!;
  // The server prints wall-clock times; the probes' are monotonic. The offset is the machine's.
  const wallAhead = Date.now() - monotonicMs();
  const stalls = stallsOf(stderr).map(({ at, ms }) => ({ at: at - wallAhead, text: `${ms.toFixed(0)} ms` }));
  const gcs = collections(stdout, stderr, -Infinity, Infinity)
    .filter(({ pauseMs }) => pauseMs >= 5)
    .map(({ at, pauseMs, text }) => ({ at: at - wallAhead, text: `${text.split(" ")[0]} ${pauseMs.toFixed(0)} ms` }));
  return sentAt.map((sent, probe) => {
    const latencies = reports.flatMap((r) => (r.arrivals[probe] ?? []).map((t) => t - sent));
    const { p50Ms, p99Ms, maxMs } = summarize(latencies);
    const during = (events: { at: number; text: string }[]) =>
      events
        .filter(({ at }) => at >= sent - 50 && at <= sent + (Number.isFinite(maxMs) ? maxMs : 0))
        .map(({ at, text }) => `${at >= sent ? "+" : ""}${Math.round(at - sent)} ${text}`)
        .join(", ");
    return (
      `${probe < countedFrom ? "onset" : "count"} probe ${probe} at +${Math.round(sent - sentAt[0]!)} ms: ` +
      `min ${fmt(latencies.length ? Math.min(...latencies) : NaN)} p50 ${fmt(p50Ms)} p99 ${fmt(p99Ms)} ms; ` +
      `server stalls [${during(stalls)}]; collections [${during(gcs)}]`
    );
  });
}

/** Mark-compacts and scavenges in node's --trace-gc output, with their pauses in ms. */
export function gcCounts(trace: string): { markCompacts: number; markCompactMs: number; scavenges: number; scavengeMs: number } {
  const counts = { markCompacts: 0, markCompactMs: 0, scavenges: 0, scavengeMs: 0 };
  // e.g. "[123:0x5a…]     8123 ms: Mark-Compact 61.2 (80.1) -> 40.3 (79.4) MB, 21.50 / 0.00 ms  (average mu = …"
  for (const m of trace.matchAll(/ms: (Mark-Compact|Scavenge)\b[^,]*, ([\d.]+) \//g)) {
    if (m[1] === "Mark-Compact") {
      counts.markCompacts++;
      counts.markCompactMs += Number(m[2]);
    } else {
      counts.scavenges++;
      counts.scavengeMs += Number(m[2]);
    }
  }
  return counts;
}
