/**
 * Starts keypool as the operator would (`node dist/src/main.js`, configured by environment
 * variables) in a child process pinned to the server core, and waits until Health/Check says
 * SERVING. The time from spawn to SERVING is the start-up time that BENCHMARKS.md reports.
 */
import { mkdtempSync, rmSync } from "node:fs";
import * as net from "node:net";
import * as os from "node:os";
import * as path from "node:path";
import { fromBinary, toBinary, create } from "@bufbuild/protobuf";
import { HealthCheckRequestSchema, HealthCheckResponseSchema, HealthCheckResponse_ServingStatus } from "../../gen/ts/grpc/health/v1/health_pb";
import { cpuMs, rssMiB, sleep, start, Started } from "./children";
import { connect, unary } from "./grpc-raw";
import { withCheckerSafety } from "../../test/support/checker-safety";

export const ROOT = path.join(__dirname, "..", "..");
export const MAIN = path.join(ROOT, "dist", "src", "main.js");

/** Node flags for a server that runs one full collection on SIGUSR2 (bench/lib/full-gc-on-signal.cjs). */
export const FULL_GC_ON_SIGNAL = ["--expose-gc", "-r", path.join(__dirname, "full-gc-on-signal.cjs")];

/**
 * Has a server started with FULL_GC_ON_SIGNAL run its full collection 150 ms from now: called as
 * a load starts, so that the collection falls while that load's calls are in flight.
 */
export async function fullCollectionSoon(pid: number): Promise<void> {
  await sleep(150);
  process.kill(pid, "SIGUSR2");
}

/** A port nobody listens on right now (the server is then told to use it). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address() as net.AddressInfo;
      server.close(() => resolve(port));
    });
  });
}

export interface ServerHandle {
  port: number;
  /** The native gRPC port (KEYPOOL_GRPC_PORT), when the server was started with one. */
  grpcPort?: number;
  pid: number;
  /** Milliseconds from spawn to the first SERVING answer. */
  startMs: number;
  /** CPU time (user + system) the server had used when it first answered SERVING, in ms. */
  startCpuMs: number;
  proc: Started;
  rssMiB(): number;
  stop(): Promise<void>;
}

const CHECK = "/grpc.health.v1.Health/Check";

/** Polls Health/Check every few milliseconds on fresh connections until SERVING or the deadline. */
export async function waitServing(port: number, proc: Started, deadlineMs: number): Promise<void> {
  const request = toBinary(HealthCheckRequestSchema, create(HealthCheckRequestSchema, { service: "" }));
  const until = Date.now() + deadlineMs;
  let last = "";
  while (Date.now() < until) {
    if (proc.child.exitCode !== null || proc.child.signalCode !== null) {
      throw new Error(`server exited before SERVING:\n${proc.stderr().slice(-3000)}\n${proc.stdout().slice(-3000)}`);
    }
    try {
      const session = await connect(port);
      try {
        const reply = await unary(session, CHECK, request, 5000);
        if (reply.grpcStatus === 0) {
          const status = fromBinary(HealthCheckResponseSchema, reply.message).status;
          if (status === HealthCheckResponse_ServingStatus.SERVING) return;
          last = `status ${HealthCheckResponse_ServingStatus[status]}`;
        } else {
          last = `grpc-status ${reply.grpcStatus} ${reply.grpcMessage}`;
        }
      } finally {
        session.destroy();
      }
    } catch (e) {
      last = String(e);
    }
    await sleep(5);
  }
  throw new Error(`server not SERVING after ${deadlineMs} ms (last: ${last})\n${proc.stderr().slice(-3000)}`);
}

export interface KeypoolOptions {
  /** KEYPOOL_* settings. Without KEYPOOL_STATE the server gets a fresh state file of its own (the default, durable configuration), removed when it stops. */
  env: Record<string, string>;
  cpus: string | undefined;
  nodeArgs?: string[];
  deadlineMs?: number;
  /** Another build's entry point, to compare builds side by side; default dist/src/main.js. */
  main?: string;
  /** Also open the native gRPC port (KEYPOOL_GRPC_PORT) on a free port. */
  nativePort?: boolean;
}

export async function startKeypool(options: KeypoolOptions): Promise<ServerHandle> {
  const port = await freePort();
  const grpcPort = options.nativePort ? await freePort() : undefined;
  const stateDir = options.env.KEYPOOL_STATE ? undefined : mkdtempSync(path.join(os.tmpdir(), "keypool-bench-state-"));
  // A fresh state file per server, never ./data: runs must not share state.
  const env = withCheckerSafety({
    ...process.env,
    ...(stateDir ? { KEYPOOL_STATE: path.join(stateDir, "keypool.db") } : {}),
    NODE_ENV: "production",
    KEYPOOL_HOST: "127.0.0.1",
    KEYPOOL_PORT: String(port),
    KEYPOOL_LOG_LEVEL: "warn",
    ...(grpcPort !== undefined ? { KEYPOOL_GRPC_PORT: String(grpcPort) } : {}),
    ...options.env,
  });
  const t0 = performance.now();
  const proc = start(process.execPath, [...(options.nodeArgs ?? []), options.main ?? MAIN], options.cpus, { env, cwd: ROOT });
  const cleanup = () => stateDir && rmSync(stateDir, { recursive: true, force: true });
  try {
    await waitServing(port, proc, options.deadlineMs ?? 60_000);
    if (grpcPort !== undefined) await waitServing(grpcPort, proc, 10_000);
  } catch (e) {
    await proc.kill();
    cleanup();
    throw e;
  }
  const startMs = performance.now() - t0;
  const pid = proc.child.pid!;
  const startCpuMs = cpuMs(pid);
  return {
    port,
    grpcPort,
    pid,
    startMs,
    startCpuMs,
    proc,
    rssMiB: () => rssMiB(pid),
    stop: async () => {
      await proc.kill();
      cleanup();
    },
  };
}

/** Starts bench/grpc-js-noop-server.ts and reads the port it prints. */
export function startGrpcJsNoop(cpus: string | undefined, nodeArgs: string[] = []): Promise<ServerHandle> {
  return startNoop("grpc-js-noop-server.ts", cpus, nodeArgs);
}

/** Starts bench/connect-noop-server.ts (the Connect stack with nothing in it). */
export function startConnectNoop(cpus: string | undefined): Promise<ServerHandle> {
  return startNoop("connect-noop-server.ts", cpus);
}

async function startNoop(script: string, cpus: string | undefined, nodeArgs: string[] = []): Promise<ServerHandle> {
  const t0 = performance.now();
  const proc = start(process.execPath, [...nodeArgs, "--import", "tsx", path.join(ROOT, "bench", script)], cpus, { cwd: ROOT });
  const until = Date.now() + 30_000;
  let port = 0;
  while (!port) {
    const m = /LISTENING (\d+)/.exec(proc.stdout());
    if (m) port = Number(m[1]);
    else if (Date.now() > until || proc.child.exitCode !== null) throw new Error(`${script} did not start:\n${proc.stderr()}`);
    else await sleep(20);
  }
  await waitServing(port, proc, 10_000);
  const pid = proc.child.pid!;
  return { port, pid, startMs: performance.now() - t0, startCpuMs: cpuMs(pid), proc, rssMiB: () => rssMiB(pid), stop: () => proc.kill() };
}
