/**
 * The deployments an end-to-end suite runs against, as one parameterized run
 * (`describe.each(DEPLOYMENTS)`): one keypool, as the suites always did, and two replicas on one
 * Redis behind a balancer that sends each call to the next replica in turn
 * (round-robin-proxy.ts), so that every assertion of the suite also holds for a client whose
 * calls land on different replicas. The replicas run in this process, each with its own Redis
 * connections, pool, watch hub and server (main and native ports), and share the suite's clock:
 * the scripts take their time from it, so a ManualClock drives the pool in Redis too.
 */
import { silentLogger } from "../../src/log";
import type { KeyPool } from "../../src/domain/key-pool";
import type { PoolApi } from "../../src/domain/pool-api";
import { POOL_DEFAULTS } from "../../src/domain/pool-options";
import { FamilyTable } from "../../src/domain/model-families";
import { parseRedisUrl } from "../../src/redis/redis-url";
import { openRedisState, type RedisState } from "../../src/redis/redis-state";
import { startServer, type RunningServer } from "../../src/server/start-server";
import { createWatchKeys, encodedStatusBytes } from "../../src/transport/watch-keys";
import { WatchHub, type WatchHubOptions } from "../../src/watch/watch-hub";
import { startRedisServer, type RedisServer } from "./redis-server";
import { startRoundRobinProxy, type RoundRobinProxy } from "./round-robin-proxy";
import { ManualClock, startTestServer, type TestServerOptions } from "./test-server";

export type Deployment = "one keypool" | "two replicas on Redis";

export const DEPLOYMENTS: Deployment[] = ["one keypool", "two replicas on Redis"];

/** The pool calls a suite makes directly (setup and checks): awaited, whichever pool it is. */
export type SuitePool = PoolApi;

export interface DeployedServer {
  /** The pool of the first keypool: calls on it change what every replica serves. */
  pool: SuitePool;
  /** The in-memory pool, for the one-keypool deployment only (tests that reach into it). */
  keyPool?: KeyPool;
  clock: TestServerOptions["clock"] & object;
  manualClock?: ManualClock;
  /** The first keypool's server (health, close). */
  server: RunningServer;
  /** Where clients connect: the keypool itself, or the balancer in front of the replicas. */
  port: number;
  url: string;
  grpcPort?: number;
  grpcUrl?: string;
  /** The replicas' watch hubs (two replicas on Redis only). */
  hubs: WatchHub[];
  /** Lease calls queued on the first keypool, waiting for a key. */
  waitingLeases(): number;
  close(): Promise<void>;
}

export interface DeploymentOptions extends TestServerOptions {
  /** The replicas' watch hubs: coalescing, heartbeats, bounds. */
  hub?: Partial<WatchHubOptions>;
}

let redis: Promise<RedisServer> | undefined;
let prefixes = 0;

// One Redis for the whole suite file: each deployment gets a prefix (a pool) of its own.
afterAll(async () => {
  const started = redis;
  redis = undefined;
  if (started) await (await started).close();
});

export async function startDeployedServer(deployment: Deployment, options: DeploymentOptions = {}): Promise<DeployedServer> {
  if (deployment === "one keypool") {
    const t = await startTestServer(options);
    return { ...t, keyPool: t.pool, clock: t.clock, hubs: [], waitingLeases: () => t.pool.waitingLeases };
  }
  redis ??= startRedisServer();
  const server = await redis;
  const clock = options.clock ?? new ManualClock();
  const prefix = `suite-${process.pid}-${++prefixes}`;
  const replicas: { state: RedisState; hub: WatchHub; running: RunningServer }[] = [];
  const proxies: RoundRobinProxy[] = [];
  // The replicas first, as a fleet shuts down: their streams end with UNAVAILABLE through the
  // balancer before it goes.
  const close = async () => {
    await Promise.all(replicas.map((r) => r.running.close()));
    await Promise.all(proxies.map((p) => p.close()));
    for (const r of replicas) {
      r.hub.close();
      await r.state.close();
    }
  };
  try {
    for (let i = 0; i < 2; i++) {
      const state = await openRedisState({
        redis: { target: parseRedisUrl(server.url, "KEYPOOL_STATE"), caFile: "", timeoutMs: 2000 },
        prefix,
        clock,
        tunables: { ...POOL_DEFAULTS, ...options.pool },
        families: options.pool?.families ?? FamilyTable.builtIn(),
        allowedFamilies: options.pool?.allowedFamilies ?? null,
        configured: options.keys ?? [],
        logger: silentLogger,
        scriptTimeFromClock: true,
      });
      const hub = new WatchHub(state.pool.mirror, { clock, measure: encodedStatusBytes, ...options.hub });
      const running = await startServer(
        { host: "127.0.0.1", port: 0, grpcPort: 0, tls: options.tls },
        { shutdownGraceMs: 500, watchKeys: createWatchKeys(hub), ...options.deps, pool: state.pool, durability: state.durability },
      );
      replicas.push({ state, hub, running });
    }
    const main = await startRoundRobinProxy(replicas.map((r) => r.running.url));
    proxies.push(main);
    const native = await startRoundRobinProxy(replicas.map((r) => r.running.grpcUrl!));
    proxies.push(native);
    return {
      pool: replicas[0]!.state.pool,
      clock,
      manualClock: clock instanceof ManualClock ? clock : undefined,
      server: replicas[0]!.running,
      port: main.port,
      url: main.url,
      grpcPort: native.port,
      grpcUrl: native.url,
      hubs: replicas.map((r) => r.hub),
      waitingLeases: () => replicas[0]!.state.pool.waitingLeases,
      close,
    };
  } catch (err) {
    await close();
    throw err;
  }
}
