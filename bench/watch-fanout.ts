/**
 * Section 3: WatchKeys fan-out. keypool with 10 OpenAI keys (the Lease load's) and one Anthropic
 * marker key; 1,000 WatchKeys subscribers (bench/watch-fanout-client.ts, on the load core) while
 * h2load leases at half the maximum Lease rate measured in section 1. Every Lease changes a key,
 * so each subscriber receives a stream of updates (coalesced per key within
 * KEYPOOL_WATCH_COALESCE); the probe changes of the marker key measure change-to-arrival time.
 */
import * as path from "node:path";
import { CoreLayout, cpuMs, sleep, start } from "./lib/children";
import { h2load, LoadResult } from "./lib/h2load";
import { findKeyHash, LEASE, leaseRequestBytes, poolTotals } from "./lib/keypool-rpc";
import { ROOT, startKeypool } from "./lib/keypool-server";

export interface FanoutResult {
  /** Which port the subscribers and the Lease load used: the main port or the native gRPC port. */
  port: "main" | "native";
  /** Whether the subscribers asked for batched changes (WatchKeysRequest.batch). */
  batch: boolean;
  subscribers: number;
  coalesceMs: number;
  leaseRateTarget: number;
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
  /** Server CPU time per message delivered (meaningful when there is no Lease load). */
  serverCpuMicrosPerMessage: number;
  streamErrors: number;
  verifier: { messages: number; outOfOrder: number; probesSeen: number; error: string };
  serverRssMiB: number;
}

export async function measureFanout(
  keysFile: string,
  opts: { subscribers: number; coalesceMs: number; leaseRate: number; durationS: number; probeIntervalMs: number; main?: string; nodeArgs?: string[]; port?: "main" | "native"; batch?: boolean },
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
    };
    const client = start(process.execPath, ["--import", "tsx", path.join(ROOT, "bench", "watch-fanout-client.ts"), JSON.stringify(config)], cores.load, { cwd: ROOT });
    while (!client.stdout().includes("READY")) {
      if (client.child.exitCode !== null) throw new Error(`fan-out client failed:\n${client.stderr()}`);
      await sleep(5);
    }
    const cpu0 = cpuMs(server.pid);
    const wall0 = performance.now();
    const connections = 2;
    const idle: LoadResult = { tool: "none", requests: 0, succeeded: 0, failed: 0, http2xx: 0, rps: 0, p50Ms: NaN, p99Ms: NaN };
    const lease = opts.leaseRate <= 0 ? idle : (await h2load(
      rpcPort,
      LEASE,
      leaseRequestBytes(),
      {
        requests: 0,
        connections,
        streamsPerConnection: 16,
        durationS: opts.durationS + 2,
        rpsPerConnection: Math.max(1, Math.round(opts.leaseRate / connections)),
      },
      cores.load,
    ));
    const code = await client.exited;
    const serverCpuShare = (cpuMs(server.pid) - cpu0) / (performance.now() - wall0);
    if (code !== 0) throw new Error(`fan-out client exited with ${code}:\n${client.stderr().slice(-3000)}`);
    const result = JSON.parse(client.stdout().trim().split("\n").pop()!);
    const serverRssMiB = server.rssMiB();
    const after = await poolTotals(rpcPort);
    const leasesGranted = after.leases - before.leases;
    log(
      `  fan-out (${port} port${opts.batch ? ", batch" : ""}): ${opts.subscribers} subscribers, ${Math.round(lease.rps)} Lease/s (target ${opts.leaseRate}), ${result.probes} probes: p50 ${result.p50Ms.toFixed(1)} ms p99 ${result.p99Ms.toFixed(1)} ms (last subscriber p99 ${result.lastSubscriberP99Ms.toFixed(1)} ms), missed ${result.missed}, verifier ${JSON.stringify(result.verifier)}`,
    );
    // A timed h2load run stops with calls in flight that the pool may still grant; every call
    // h2load saw complete must have been granted.
    const inFlightAtEnd = connections * 16;
    if (leasesGranted < lease.http2xx || leasesGranted > lease.requests + inFlightAtEnd) {
      throw new Error(`fan-out: h2load completed ${lease.http2xx} Leases (HTTP 200) but the pool granted ${leasesGranted}: some Lease calls failed`);
    }
    const serverCpuMicrosPerMessage = (serverCpuShare * 1e6) / result.messagesPerSec;
    log(`  fan-out: ${Math.round(result.messagesPerSec)} messages/s delivered, server busy ${(serverCpuShare * 100).toFixed(0)}% of a core, ${serverCpuMicrosPerMessage.toFixed(0)} µs of server CPU per message`);
    return { ...result, port, batch: opts.batch ?? false, serverCpuShare, serverCpuMicrosPerMessage, coalesceMs: opts.coalesceMs, leaseRateTarget: opts.leaseRate, lease, leasesGranted, serverRssMiB };
  } finally {
    await server.stop();
  }
}
