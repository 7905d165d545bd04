/**
 * Section 1 and 2 of the suite: Lease against Health/Check (the no-op ceiling of the same
 * server) with the same load, from h2load and from a Connect client, on keypool with 10 and with
 * 100,000 keys (its main port and its native gRPC port) and on no-op @grpc/grpc-js and
 * connect-node servers. h2load runs also read the server's CPU time per call from /proc. Runs alternate Lease and Check round by round
 * so that the machine's noise falls on both; the table shows medians.
 *
 * Every h2load Lease run is checked: a sampled Lease through grpc-raw must succeed before and
 * after, and the pool's total lease_count must grow by exactly the number of Leases sent (a
 * failed Lease does not count), so a fast failure can never pass for throughput.
 */
import * as path from "node:path";
import { create, toBinary } from "@bufbuild/protobuf";
import { HealthCheckRequestSchema } from "../gen/ts/grpc/health/v1/health_pb";
import { CoreLayout, cpuMs, run } from "./lib/children";
import { h2load, LoadResult, LoadShape } from "./lib/h2load";
import { CHECK, LEASE, leaseOnce, leaseRequestBytes, poolTotals } from "./lib/keypool-rpc";
import { ROOT, ServerHandle } from "./lib/keypool-server";
import { median } from "./lib/stats";

export interface Shapes {
  /** `requests` is a cap: each h2load run is sized to last about `secondsPerRun` at the warm-up rate. */
  h2load: LoadShape;
  /** `requests` is a cap: each connect-node run also stops after `secondsPerRun`. */
  connect: LoadShape;
  rounds: number;
  secondsPerRun: number;
}

export type Method = "lease" | "check";
export type Tool = "h2load" | "connect-node";

export interface CellResult {
  server: string;
  method: Method;
  tool: Tool;
  runs: LoadResult[];
  rps: number;
  p50Ms: number;
  p99Ms: number;
  failed: number;
  /** h2load runs only: the server process's CPU time (user + system) per call, in microseconds. */
  cpuMicrosPerCall?: number;
}

const checkBytes = toBinary(HealthCheckRequestSchema, create(HealthCheckRequestSchema, { service: "" }));

async function connectLoad(port: number, method: Method, shape: LoadShape, cpus: string | undefined): Promise<LoadResult & { warmupCalls: number; errors: Record<string, number>; firstError: string }> {
  const config = { port, method, requests: shape.requests, durationMs: shape.durationS ? shape.durationS * 1000 : undefined, connections: shape.connections, streamsPerConnection: shape.streamsPerConnection };
  const { stdout } = await run(process.execPath, ["--import", "tsx", path.join(ROOT, "bench", "connect-load.ts"), JSON.stringify(config)], cpus, { cwd: ROOT });
  return JSON.parse(stdout.trim().split("\n").pop()!);
}

/**
 * Measures one server. `verifyLeases`: the server is keypool, whose lease counts prove success.
 */
export async function measureServer(
  name: string,
  server: ServerHandle,
  shapes: Shapes,
  cores: CoreLayout,
  verifyLeases: boolean,
  log: (line: string) => void,
): Promise<CellResult[]> {
  const leaseBytes = leaseRequestBytes();
  const runs = new Map<string, LoadResult[]>();
  const cpuMicros = new Map<string, number[]>();
  const add = (method: Method, tool: Tool, r: LoadResult, serverCpuMs?: number) => {
    const k = `${method}/${tool}`;
    if (!runs.has(k)) runs.set(k, []);
    runs.get(k)!.push(r);
    if (serverCpuMs !== undefined && r.requests > 0) {
      if (!cpuMicros.has(k)) cpuMicros.set(k, []);
      cpuMicros.get(k)!.push((serverCpuMs * 1000) / r.requests);
    }
  };

  let expectedLeases = 0;
  const before = verifyLeases ? await poolTotals(server.port) : undefined;
  if (verifyLeases) {
    await leaseOnce(server.port);
    expectedLeases++;
  }

  // Warm up the server's JIT on both paths before anything counts, and size the runs so that
  // each lasts about secondsPerRun on this machine (bounded time whatever the machine).
  const warm: LoadShape = { ...shapes.h2load, requests: Math.min(3000, shapes.h2load.requests) };
  const warmLease = await h2load(server.port, LEASE, leaseBytes, warm, cores.load);
  const warmCheck = await h2load(server.port, CHECK, checkBytes, warm, cores.load);
  expectedLeases += warm.requests;
  const h2Requests = Math.max(1000, Math.min(shapes.h2load.requests, Math.round(Math.max(warmLease.rps, warmCheck.rps) * shapes.secondsPerRun)));
  const h2Shape: LoadShape = { ...shapes.h2load, requests: h2Requests };
  const connectShape: LoadShape = { ...shapes.connect, durationS: shapes.secondsPerRun };

  for (let round = 0; round < shapes.rounds; round++) {
    const order: Method[] = round % 2 === 0 ? ["lease", "check"] : ["check", "lease"];
    for (const method of order) {
      const cpuBefore = cpuMs(server.pid);
      const r = await h2load(server.port, method === "lease" ? LEASE : CHECK, method === "lease" ? leaseBytes : checkBytes, h2Shape, cores.load);
      const serverCpuMs = cpuMs(server.pid) - cpuBefore;
      if (method === "lease") expectedLeases += r.requests;
      add(method, "h2load", r, serverCpuMs);
      log(`  ${name} ${method} h2load round ${round + 1}: ${Math.round(r.rps)}/s p50 ${r.p50Ms.toFixed(2)} ms p99 ${r.p99Ms.toFixed(2)} ms, server CPU ${((serverCpuMs * 1000) / r.requests).toFixed(1)} µs per call${r.failed ? ` FAILED ${r.failed}` : ""}`);
    }
    for (const method of order) {
      const r = await connectLoad(server.port, method, connectShape, cores.load);
      if (method === "lease") expectedLeases += r.requests + r.warmupCalls;
      add(method, "connect-node", r);
      log(`  ${name} ${method} connect-node round ${round + 1}: ${Math.round(r.rps)}/s p50 ${r.p50Ms.toFixed(2)} ms p99 ${r.p99Ms.toFixed(2)} ms${r.failed ? ` FAILED ${r.failed} ${JSON.stringify(r.errors)} ${r.firstError}` : ""}`);
    }
  }

  if (verifyLeases && before) {
    await leaseOnce(server.port);
    expectedLeases++;
    const after = await poolTotals(server.port);
    const granted = after.leases - before.leases;
    if (granted !== expectedLeases) {
      throw new Error(`${name}: sent ${expectedLeases} Leases but the pool granted ${granted}: some Lease calls failed (non-OK grpc-status)`);
    }
    log(`  ${name}: verified ${granted} Leases granted (pool lease_count delta = Leases sent)`);
  }

  const cells: CellResult[] = [];
  for (const [k, rs] of runs) {
    const [method, tool] = k.split("/") as [Method, Tool];
    cells.push({
      server: name,
      method,
      tool,
      runs: rs,
      rps: median(rs.map((r) => r.rps)),
      p50Ms: median(rs.map((r) => r.p50Ms)),
      p99Ms: median(rs.map((r) => r.p99Ms)),
      failed: rs.reduce((a, r) => a + r.failed, 0),
      ...(cpuMicros.has(k) ? { cpuMicrosPerCall: median(cpuMicros.get(k)!) } : {}),
    });
  }
  return cells;
}
