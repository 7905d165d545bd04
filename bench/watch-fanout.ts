/**
 * Section 3: WatchKeys fan-out. keypool with 10 OpenAI keys (the Lease load's) and one Anthropic
 * marker key; 1,000 WatchKeys subscribers (bench/watch-fanout-client.ts, on the load core) while
 * the same process leases at a fixed rate (`leaseRate`, or "half-max": half the Lease maximum
 * h2load measures on this server just before the subscribers open). Every Lease changes a key,
 * so each subscriber receives a stream of updates (coalesced per key within
 * KEYPOOL_WATCH_COALESCE); the probe changes of the marker key measure change-to-arrival time.
 */
import * as path from "node:path";
import { CoreLayout, cpuMs, sleep, start } from "./lib/children";
import { h2load, LoadResult } from "./lib/h2load";
import { findKeyHash, LEASE, leaseRequestBytes, poolTotals } from "./lib/keypool-rpc";
import { ROOT, startKeypool } from "./lib/keypool-server";
import type { PacedLeaseResult } from "./lib/paced-lease";

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
  probes: number;
  samples: number;
  missed: number;
  /** Arrivals that came as a later probe's state, coalesced within one window (counted with their own send time). */
  superseded: number;
  p50Ms: number;
  p99Ms: number;
  maxMs: number;
  lastSubscriberP50Ms: number;
  lastSubscriberP99Ms: number;
  bytesReceived: number;
  /** WatchKeys messages the 1,000 raw subscribers received per second, from READY to the end. */
  messagesPerSec: number;
  /** Share of one core the server used over the same span (from /proc/<pid>/stat). */
  serverCpuShare: number;
  /** Share of one core the load generator (subscribers, probes and Lease load) used while probing. */
  generatorCpuShare: number;
  /** Server CPU time per message delivered (meaningful when there is no Lease load). */
  serverCpuMicrosPerMessage: number;
  streamErrors: number;
  verifier: { messages: number; outOfOrder: number; probesSeen: number; error: string };
  serverRssMiB: number;
  /** The span the subscribers were counting, on the monotonic clock in µs (a CPU profile's clock). */
  countingFromUs: number;
  countingToUs: number;
}

export async function measureFanout(
  keysFile: string,
  opts: { subscribers: number; coalesceMs: number; leaseRate: number | "half-max"; durationS: number; probeIntervalMs: number; main?: string; nodeArgs?: string[]; port?: "main" | "native"; batch?: boolean },
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
    nodeArgs: opts.nodeArgs,
    nativePort: opts.port === "native",
  });
  const port = opts.port ?? "main";
  const rpcPort = port === "native" ? server.grpcPort! : server.port;
  try {
    const markerKeyHash = await findKeyHash(rpcPort, "anthropic");
    let leaseMaxRps: number | undefined;
    if (opts.leaseRate === "half-max") {
      const max = await h2load(rpcPort, LEASE, leaseRequestBytes(), { requests: 20_000, connections: 4, streamsPerConnection: 16 }, cores.load);
      leaseMaxRps = max.rps;
      log(`  fan-out (${port} port): Lease maximum on this server ${Math.round(max.rps)}/s (h2load, 4 connections x 16 streams, no subscribers)`);
    }
    const leaseRate = opts.leaseRate === "half-max" ? Math.round(leaseMaxRps! / 2) : opts.leaseRate;
    const before = await poolTotals(rpcPort);
    const config = {
      port: rpcPort,
      subscribers: opts.subscribers,
      connections: Math.max(1, Math.ceil(opts.subscribers / 100)),
      markerKeyHash,
      warmupMs: 1000,
      durationMs: opts.durationS * 1000,
      probeIntervalMs: opts.probeIntervalMs,
      batch: opts.batch ?? false,
      leaseRate,
      leaseConnections: 2,
    };
    const client = start(process.execPath, ["--import", "tsx", path.join(ROOT, "bench", "watch-fanout-client.ts"), JSON.stringify(config)], cores.load, { cwd: ROOT });
    while (!client.stdout().includes("READY")) {
      if (client.child.exitCode !== null) throw new Error(`fan-out client failed:\n${client.stderr()}`);
      await sleep(5);
    }
    const cpu0 = cpuMs(server.pid);
    const wall0 = performance.now();
    const countingFromUs = Number(process.hrtime.bigint() / 1000n);
    const code = await client.exited;
    const countingToUs = Number(process.hrtime.bigint() / 1000n);
    const serverCpuShare = (cpuMs(server.pid) - cpu0) / (performance.now() - wall0);
    if (code !== 0) throw new Error(`fan-out client exited with ${code}:\n${client.stderr().slice(-3000)}`);
    const result = JSON.parse(client.stdout().trim().split("\n").pop()!);
    const paced = result.lease as PacedLeaseResult | undefined;
    const lease: LoadResult = paced
      ? { tool: "paced raw HTTP/2", requests: paced.sent, succeeded: paced.ok, failed: paced.failed, http2xx: paced.ok, rps: paced.rps, p50Ms: paced.p50Ms, p99Ms: paced.p99Ms }
      : { tool: "none", requests: 0, succeeded: 0, failed: 0, http2xx: 0, rps: 0, p50Ms: NaN, p99Ms: NaN };
    if (paced && paced.failed > 0) throw new Error(`fan-out: ${paced.failed} of ${paced.sent} Leases failed (${paced.firstError})`);
    const serverRssMiB = server.rssMiB();
    const after = await poolTotals(rpcPort);
    const leasesGranted = after.leases - before.leases;
    log(
      `  fan-out (${port} port${opts.batch ? ", batch" : ""}): ${opts.subscribers} subscribers, ${Math.round(lease.rps)} Lease/s (target ${leaseRate}), ${result.probes} probes: p50 ${result.p50Ms.toFixed(1)} ms p99 ${result.p99Ms.toFixed(1)} ms (last subscriber p99 ${result.lastSubscriberP99Ms.toFixed(1)} ms), missed ${result.missed}, verifier ${JSON.stringify(result.verifier)}`,
    );
    // Every Lease the load generator saw succeed, and no more, was granted by the pool.
    if (leasesGranted !== lease.succeeded) {
      throw new Error(`fan-out: the load generator saw ${lease.succeeded} Leases succeed but the pool granted ${leasesGranted}`);
    }
    const serverCpuMicrosPerMessage = (serverCpuShare * 1e6) / result.messagesPerSec;
    log(`  fan-out: ${Math.round(result.messagesPerSec)} messages/s delivered, server busy ${(serverCpuShare * 100).toFixed(0)}% of a core, load generator ${(result.cpuShare * 100).toFixed(0)}% (while probing), ${serverCpuMicrosPerMessage.toFixed(0)} µs of server CPU per message`);
    return { ...result, port, batch: opts.batch ?? false, serverCpuShare, generatorCpuShare: result.cpuShare, serverCpuMicrosPerMessage, coalesceMs: opts.coalesceMs, leaseRateTarget: leaseRate, leaseMaxRps, lease, leasesGranted, serverRssMiB, countingFromUs, countingToUs };
  } finally {
    await server.stop();
  }
}
