/**
 * An in-process keypool assembled the way main.ts does it for access control: settings read from
 * an environment, loadAccess()'s interceptors, message limit, listener limits and waiter cap, a real pool
 * and WatchKeys hub, on 127.0.0.1 port 0 over real sockets.
 */
import { loadAccess, type Access } from "../../src/auth/access";
import { readSettings, type Settings } from "../../src/config/settings";
import { ManualClock, type Clock } from "../../src/domain/clock";
import { KeyPool, type PoolOptions } from "../../src/domain/key-pool";
import type { PoolApi } from "../../src/domain/pool-api";
import type { KeySpec } from "../../src/domain/types";
import type { ConnectionTimeouts } from "../../src/server/connection-guard";
import { listenerLimits } from "../../src/server/listener-limits";
import { startServer, type RunningServer } from "../../src/server/start-server";
import { createWatchKeys } from "../../src/transport/watch-keys";
import { WatchHub } from "../../src/watch/watch-hub";
import { startDeployedServer, type Deployment } from "./deployments";

export interface AccessServer {
  settings: Settings;
  access: Access;
  pool: KeyPool;
  hub: WatchHub;
  clock: Clock;
  server: RunningServer;
  port: number;
  url: string;
  /** The native gRPC port (test/support/ports.ts picks between the two). */
  grpcPort?: number;
  grpcUrl?: string;
  close(): Promise<void>;
}

export async function startAccessServer(options: {
  env?: NodeJS.ProcessEnv;
  keys?: KeySpec[];
  clock?: Clock;
  pool?: Omit<PoolOptions, "clock" | "maxWaitersPerFamily" | "maxWaiters">;
  tls?: { certFile: string; keyFile: string };
  /** Header, request and idle timeouts (KEYPOOL_*_TIMEOUT); default: the server's. */
  timeouts?: ConnectionTimeouts;
} = {}): Promise<AccessServer> {
  const clock = options.clock ?? new ManualClock();
  const settings = readSettings({ ...options.env, KEYPOOL_HOST: "127.0.0.1" });
  const access = loadAccess(settings);
  const pool = new KeyPool({ ...options.pool, clock, maxWaitersPerFamily: settings.pool.maxWaitersPerFamily,
    maxWaiters: settings.pool.maxWaiters,
  });
  if (options.keys?.length) pool.addKeys(options.keys);
  const hub = new WatchHub(pool, { clock, maxSubscribers: settings.watch.maxWatchers });
  const server = await startServer(
    { host: "127.0.0.1", port: 0, grpcPort: 0, tls: options.tls },
    {
      pool,
      watchKeys: createWatchKeys(hub),
      interceptors: access.interceptors,
      readMaxBytes: settings.limits.maxMessageBytes,
      listenerLimits: listenerLimits(settings.limits),
      connectionTimeouts: options.timeouts,
      shutdownGraceMs: 300,
    },
  );
  return {
    settings,
    access,
    pool,
    hub,
    clock,
    server,
    port: server.port,
    url: server.url,
    grpcPort: server.grpcPort,
    grpcUrl: server.grpcUrl,
    async close() {
      await server.close();
      hub.close();
      pool.close();
    },
  };
}

/**
 * A keypool assembled with access control, as startAccessServer does, in one of the deployments
 * of deployments.ts: one keypool, or two replicas on one Redis behind the round-robin balancer,
 * each replica with the same settings (tokens, message limit, listener limits, waiter and
 * watcher caps).
 */
export interface AccessDeployment {
  /** The pool: calls on it change what every replica serves (await them). */
  pool: PoolApi;
  clock: Clock;
  /** Where clients connect: the keypool itself, or the balancer in front of the replicas. */
  port: number;
  url: string;
  grpcPort?: number;
  grpcUrl?: string;
  /**
   * One keypool process, reached directly: what each process bounds on its own (listener
   * limits, open watchers, queued waiters) is seen on it, not through a balancer that answers
   * with its own limits and spreads calls over several processes.
   */
  process: {
    server: RunningServer;
    hub: WatchHub;
    /** Lease calls queued on this process, waiting for a key. */
    waitingLeases(): number;
    port: number;
    url: string;
    grpcPort?: number;
    grpcUrl?: string;
  };
  close(): Promise<void>;
}

export async function startAccessDeployment(
  deployment: Deployment,
  options: Parameters<typeof startAccessServer>[0] = {},
): Promise<AccessDeployment> {
  const onProcess = (server: RunningServer, hub: WatchHub, waitingLeases: () => number) => ({
    server,
    hub,
    waitingLeases,
    port: server.port,
    url: server.url,
    grpcPort: server.grpcPort,
    grpcUrl: server.grpcUrl,
  });
  if (deployment === "one keypool") {
    const srv = await startAccessServer(options);
    return { ...srv, process: onProcess(srv.server, srv.hub, () => srv.pool.waitingLeases) };
  }
  const settings = readSettings({ ...options.env, KEYPOOL_HOST: "127.0.0.1" });
  const access = loadAccess(settings);
  const t = await startDeployedServer(deployment, {
    clock: options.clock,
    keys: options.keys,
    tls: options.tls,
    pool: { ...options.pool, maxWaitersPerFamily: settings.pool.maxWaitersPerFamily, maxWaiters: settings.pool.maxWaiters },
    hub: { maxSubscribers: settings.watch.maxWatchers },
    deps: {
      interceptors: access.interceptors,
      readMaxBytes: settings.limits.maxMessageBytes,
      listenerLimits: listenerLimits(settings.limits),
      connectionTimeouts: options.timeouts,
      shutdownGraceMs: 300,
    },
  });
  return { ...t, process: onProcess(t.server, t.hubs[0]!, t.waitingLeases) };
}
