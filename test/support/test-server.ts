/**
 * Start a real keypool server in this process, on 127.0.0.1 port 0, over real sockets: a real
 * KeyPool (with a ManualClock by default, so tests move time instead of sleeping) behind the
 * real listener and services. Close it in afterAll/afterEach.
 */
import { ManualClock, systemClock, type Clock } from "../../src/domain/clock";
import { KeyPool, type PoolOptions } from "../../src/domain/key-pool";
import type { KeySpec } from "../../src/domain/types";
import { startServer, type RunningServer, type ServerDeps } from "../../src/server/start-server";

export interface TestServerOptions {
  /** Default: a new ManualClock. Pass systemClock for real-time waits. */
  clock?: Clock;
  pool?: Omit<PoolOptions, "clock">;
  keys?: KeySpec[];
  /** Extra server dependencies (durability, watchKeys, interceptors, logger...). */
  deps?: Omit<ServerDeps, "pool">;
  tls?: { certFile: string; keyFile: string };
}

export interface TestServer {
  pool: KeyPool;
  clock: Clock;
  /** The ManualClock when one is used (the default). */
  manualClock?: ManualClock;
  server: RunningServer;
  port: number;
  url: string;
  /** The native gRPC port (test/support/ports.ts picks between the two). */
  grpcPort?: number;
  grpcUrl?: string;
  close(): Promise<void>;
}

export async function startTestServer(options: TestServerOptions = {}): Promise<TestServer> {
  const clock = options.clock ?? new ManualClock();
  const pool = new KeyPool({ ...options.pool, clock });
  if (options.keys?.length) pool.addKeys(options.keys);
  const server = await startServer(
    { host: "127.0.0.1", port: 0, grpcPort: 0, tls: options.tls },
    { shutdownGraceMs: 500, ...options.deps, pool },
  );
  return {
    pool,
    clock,
    manualClock: clock instanceof ManualClock ? clock : undefined,
    server,
    port: server.port,
    url: server.url,
    grpcPort: server.grpcPort,
    grpcUrl: server.grpcUrl,
    async close() {
      await server.close();
      pool.close();
    },
  };
}

export { ManualClock, systemClock };

/** Distinct, valid-looking test secrets. */
export const testKey = (provider: "openai" | "anthropic", n: number) =>
  provider === "openai" ? `sk-test-openai-${String(n).padStart(4, "0")}` : `sk-ant-test-${String(n).padStart(4, "0")}`;

/**
 * Moves a ManualClock forward by `stepMs` every `intervalMs` of real time until `promise`
 * settles. For calls that wait on pool time (Lease max_wait): the test does not need to know when
 * the request reached the server, only that time moves until it is answered.
 */
export async function advanceUntilSettled<T>(
  clock: ManualClock,
  promise: Promise<T>,
  stepMs: number,
  intervalMs = 50,
): Promise<T> {
  let settled = false;
  const done = promise.finally(() => (settled = true));
  while (!settled) {
    await Promise.race([done.catch(() => undefined), new Promise((resolve) => setTimeout(resolve, intervalMs))]);
    if (!settled) clock.advance(stepMs);
  }
  return done;
}
