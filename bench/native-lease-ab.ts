/**
 * Native-port Lease, side by side: keypool's native gRPC port (KEYPOOL_GRPC_PORT) with each key
 * count asked for (10 and 100,000 by default), Health/Check on the same native ports, optionally
 * the same from other builds (`--baseline=<dir>[,<dir>...]`, each holding a build's dist/), and
 * the grpc-js no-op server's Lease, all running at once and driven by the same h2load shape in
 * rounds whose order alternates, so that a loaded machine's noise falls on each. Prints per cell
 * the median rate and the server's CPU time per call (from /proc), with the ratios the targets
 * name: Lease / no-op Lease and Lease / Check of the same server.
 *
 *   npx tsx bench/native-lease-ab.ts [--keys=10,100000[,100000@10]] [--rounds=5] [--requests=15000] [--baseline=/tmp/before] [--state=memory] [--warm=3000] [--full-gc] [--server-flag=<flag>]
 *
 * `--keys` lists the pools: `100000` is 100,000 keys that the Leases rotate through (each Lease
 * takes the least recently used key, so every Lease reads a key no call has touched for as long
 * as the rotation takes); `100000@10` is a pool of the same size whose Leases reach only 10 of
 * its keys (the rest serve another provider), which sets the pool's size apart from a key read
 * cold on every Lease.
 *
 * Each Lease cell gets `--warm` calls before the rounds (3,000 by default; a Check cell at most
 * 3,000). With the default, every Lease the rounds send to a 100,000-key server is its key's first
 * since the server started; with `--warm` above the largest key count, every key has been leased
 * once, as in a pool in service.
 *
 * `--full-gc`: every server, the no-op included, runs one full (mark-compact) collection while
 * its warm-up calls are in flight (bench/lib/full-gc-on-signal.cjs), so that all are measured in
 * the state a long-running server reaches; without it, a server that happens to run its first
 * mark-compact during the rounds (a large pool does, the no-op does not) is measured in another.
 *
 * `--server-flag=<flag>` (repeatable, diagnosis): a node or V8 flag for this build's keypool servers
 * only, not the other builds' nor the no-op's; with `--baseline=.` it measures a flag against none
 * on the same code.
 *
 * Beside the server's CPU per call, the share of it spent on the server's main thread: the rest is
 * other threads (V8's garbage collection helpers, the state file's commit worker).
 * Leases use KEYPOOL_REUSE_DELAY=0 (a key is ready again at once), as bench/profile-server.ts;
 * each keypool server has its own fresh state file (the default, durable configuration; `--state`
 * sets KEYPOOL_STATE instead, e.g. `memory` to see what durability costs). h2load
 * sees HTTP statuses only, so every keypool server's pool must have granted exactly the Leases
 * sent (its lease_count, read through the main port), or the run fails.
 */
import * as os from "node:os";
import * as path from "node:path";
import { create, toBinary } from "@bufbuild/protobuf";
import { HealthCheckRequestSchema } from "../gen/ts/grpc/health/v1/health_pb";
import { coreLayout, cpuMs, mainThreadCpuMs } from "./lib/children";
import { h2load } from "./lib/h2load";
import { CHECK, LEASE, leaseOnce, leaseRequestBytes, poolTotals } from "./lib/keypool-rpc";
import { FULL_GC_ON_SIGNAL, fullCollectionSoon, startGrpcJsNoop, startKeypool, type ServerHandle } from "./lib/keypool-server";
import { leaseBenchEnv, poolOf, writeKeysFile } from "./lib/keys-file";
import { median } from "./lib/stats";
import { benchArg, buildsToCompare } from "./lib/ab-args";

interface Server {
  name: string;
  handle: ServerHandle;
  /** The port measured: the native port of a keypool server, the no-op's only port. */
  port: number;
  keypool: boolean;
  leasesSent: number;
  leasesBefore: number;
}

interface Cell {
  server: Server;
  method: "Lease" | "Check";
  rates: number[];
  cpuMicros: number[];
  mainMicros: number[];
}

async function main(): Promise<void> {
  const pools = benchArg("keys", "10,100000").split(",").map(poolOf);
  const rounds = Number(benchArg("rounds", "5"));
  const requests = Number(benchArg("requests", "15000"));
  const state = benchArg("state", "");
  const warmCalls = Number(benchArg("warm", "3000"));
  const fullGc = process.argv.includes("--full-gc");
  const nodeArgs = fullGc ? FULL_GC_ON_SIGNAL : [];
  const serverFlags = process.argv.filter((a) => a.startsWith("--server-flag=")).map((a) => a.slice("--server-flag=".length));
  const builds = buildsToCompare();
  const cores = coreLayout();
  const load = os.loadavg();

  const servers: Server[] = [];
  try {
    for (const pool of pools) {
      const { keys, leasable } = pool;
      const keysFile = path.join(os.tmpdir(), `keypool-ab-keys-${pool.label}.json`);
      writeKeysFile(keysFile, keys, { leasable });
      const env = leaseBenchEnv(keysFile, state);
      for (const build of builds) {
        const flags = build.main ? nodeArgs : [...serverFlags, ...nodeArgs];
        const handle = await startKeypool({ env, cpus: cores.server, nativePort: true, nodeArgs: flags, ...(build.main ? { main: build.main } : {}) });
        await leaseOnce(handle.port);
        const { leases } = await poolTotals(handle.port);
        const label = build.main || serverFlags.length === 0 ? build.label : `${build.label} ${serverFlags.join(" ")}`;
        servers.push({ name: `native port, ${pool.name}, ${label}`, handle, port: handle.grpcPort!, keypool: true, leasesSent: 0, leasesBefore: leases });
      }
    }
    const noop = await startGrpcJsNoop(cores.server, nodeArgs);
    servers.push({ name: "grpc-js no-op server", handle: noop, port: noop.port, keypool: false, leasesSent: 0, leasesBefore: 0 });

    const bodies = { Lease: leaseRequestBytes(), Check: toBinary(HealthCheckRequestSchema, create(HealthCheckRequestSchema, {})) };
    const paths = { Lease: LEASE, Check: CHECK };
    const cells: Cell[] = [];
    for (const server of servers) {
      cells.push({ server, method: "Lease", rates: [], cpuMicros: [], mainMicros: [] });
      if (server.keypool) cells.push({ server, method: "Check", rates: [], cpuMicros: [], mainMicros: [] });
    }
    const shape = { requests, connections: 4, streamsPerConnection: 16 };
    for (const cell of cells) {
      // Check reads no key: a few calls warm it.
      const warm = { ...shape, requests: cell.method === "Lease" ? warmCalls : Math.min(warmCalls, 3000) };
      const warming = h2load(cell.server.port, paths[cell.method], bodies[cell.method], warm, cores.load);
      if (fullGc && cell.method === "Lease") await fullCollectionSoon(cell.server.handle.pid);
      await warming;
      if (cell.method === "Lease") cell.server.leasesSent += warm.requests;
    }
    for (let round = 0; round < rounds; round++) {
      const order = round % 2 === 0 ? cells : [...cells].reverse();
      for (const cell of order) {
        const before = cpuMs(cell.server.handle.pid);
        const mainBefore = mainThreadCpuMs(cell.server.handle.pid);
        const r = await h2load(cell.server.port, paths[cell.method], bodies[cell.method], shape, cores.load);
        const micros = ((cpuMs(cell.server.handle.pid) - before) * 1000) / r.requests;
        const mainMicros = ((mainThreadCpuMs(cell.server.handle.pid) - mainBefore) * 1000) / r.requests;
        if (r.failed) throw new Error(`${cell.server.name}: ${r.failed} ${cell.method} calls failed`);
        if (cell.method === "Lease") cell.server.leasesSent += r.requests;
        cell.rates.push(r.rps);
        cell.cpuMicros.push(micros);
        cell.mainMicros.push(mainMicros);
        process.stdout.write(`  round ${round + 1} ${cell.server.name} ${cell.method}: ${Math.round(r.rps)}/s, ${micros.toFixed(1)} µs CPU per call (main thread ${mainMicros.toFixed(1)})\n`);
      }
    }
    for (const server of servers.filter((s) => s.keypool)) {
      const { leases } = await poolTotals(server.handle.port);
      if (leases - server.leasesBefore !== server.leasesSent) {
        throw new Error(`${server.name}: sent ${server.leasesSent} Leases, the pool granted ${leases - server.leasesBefore}: some Leases failed`);
      }
      process.stdout.write(`  ${server.name}: verified ${server.leasesSent} Leases granted\n`);
    }

    const rateOf = (cell: Cell) => median(cell.rates);
    const cpuOf = (cell: Cell) => median(cell.cpuMicros);
    const mainOf = (cell: Cell) => median(cell.mainMicros);
    const noopCell = cells.find((c) => !c.server.keypool)!;
    const lines = [
      ``,
      `${state ? `KEYPOOL_STATE=${state}; ` : ""}${warmCalls} warm-up Leases per server${fullGc ? " with a full collection among them" : ""}; h2load 4 connections x 16 streams, ${rounds} rounds of ${requests} calls per cell, medians; load average at the start ${load.map((l) => l.toFixed(1)).join(" ")}, at the end ${os.loadavg().map((l) => l.toFixed(1)).join(" ")}:`,
      `| server | Lease | Lease / no-op Lease | Check | Lease / Check | CPU per Lease | / no-op | main thread per Lease | CPU per Check |`,
      `|---|---|---|---|---|---|---|---|---|`,
    ];
    for (const server of servers) {
      const lease = cells.find((c) => c.server === server && c.method === "Lease")!;
      const check = cells.find((c) => c.server === server && c.method === "Check");
      lines.push(
        [
          server.name,
          `${Math.round(rateOf(lease))}/s`,
          (rateOf(lease) / rateOf(noopCell)).toFixed(2),
          check ? `${Math.round(rateOf(check))}/s` : "",
          check ? (rateOf(lease) / rateOf(check)).toFixed(2) : "",
          `${cpuOf(lease).toFixed(0)} µs`,
          (cpuOf(lease) / cpuOf(noopCell)).toFixed(2),
          `${mainOf(lease).toFixed(0)} µs`,
          check ? `${cpuOf(check).toFixed(0)} µs` : "",
        ].join(" | ").replace(/^/, "| ").replace(/$/, " |"),
      );
    }
    process.stdout.write(lines.join("\n") + "\n");
  } finally {
    for (const s of servers) await s.handle.stop();
  }
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
