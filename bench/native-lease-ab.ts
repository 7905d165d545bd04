/**
 * Native-port Lease, side by side: keypool's native gRPC port (KEYPOOL_GRPC_PORT) from this build,
 * optionally from other builds (`--baseline=<dir>[,<dir>...]`, each holding a build's dist/), and the grpc-js
 * no-op server, all running at once, driven by the same h2load shape in alternating rounds so
 * that a loaded machine's noise falls on each. Prints per server the median Lease rate and the
 * server's CPU time per Lease (from /proc), and the ratios to the no-op of the same run.
 *
 *   npx tsx bench/native-lease-ab.ts [--keys=10] [--rounds=5] [--requests=20000] [--baseline=/tmp/before]
 *
 * Leases use KEYPOOL_REUSE_DELAY=0 (a key is ready again at once), as bench/profile-server.ts;
 * each keypool server has its own fresh state file (the default, durable configuration).
 */
import * as os from "node:os";
import * as path from "node:path";
import { coreLayout, cpuMs } from "./lib/children";
import { h2load } from "./lib/h2load";
import { LEASE, leaseRequestBytes } from "./lib/keypool-rpc";
import { startGrpcJsNoop, startKeypool, type ServerHandle } from "./lib/keypool-server";
import { writeKeysFile } from "./lib/keys-file";
import { median } from "./lib/stats";

async function main(): Promise<void> {
  const arg = (name: string, fallback: string) => process.argv.find((a) => a.startsWith(`--${name}=`))?.slice(name.length + 3) ?? fallback;
  const keys = Number(arg("keys", "10"));
  const rounds = Number(arg("rounds", "5"));
  const requests = Number(arg("requests", "20000"));
  const baselines = arg("baseline", "").split(",").filter(Boolean);
  const cores = coreLayout();
  const keysFile = path.join(os.tmpdir(), `keypool-ab-keys-${keys}.json`);
  writeKeysFile(keysFile, keys);
  const env = { KEYPOOL_KEYS_FILE: keysFile, KEYPOOL_REUSE_DELAY: "0" };

  const servers: { name: string; handle: ServerHandle; port: number }[] = [];
  try {
    const current = await startKeypool({ env, cpus: cores.server, nativePort: true });
    servers.push({ name: "native port, this build", handle: current, port: current.grpcPort! });
    for (const build of baselines) {
      const other = await startKeypool({ env, cpus: cores.server, nativePort: true, main: path.join(build, "dist", "src", "main.js") });
      servers.push({ name: `native port, ${build}`, handle: other, port: other.grpcPort! });
    }
    const noop = await startGrpcJsNoop(cores.server);
    servers.push({ name: "grpc-js no-op server", handle: noop, port: noop.port });

    const body = leaseRequestBytes();
    const shape = { requests, connections: 4, streamsPerConnection: 16 };
    for (const s of servers) await h2load(s.port, LEASE, body, { ...shape, requests: Math.min(3000, requests) }, cores.load);
    const rates = new Map<string, number[]>();
    const cpu = new Map<string, number[]>();
    for (let round = 0; round < rounds; round++) {
      const order = round % 2 === 0 ? servers : [...servers].reverse();
      for (const s of order) {
        const before = cpuMs(s.handle.pid);
        const r = await h2load(s.port, LEASE, body, shape, cores.load);
        const micros = ((cpuMs(s.handle.pid) - before) * 1000) / r.requests;
        if (r.failed) throw new Error(`${s.name}: ${r.failed} Leases failed`);
        (rates.get(s.name) ?? rates.set(s.name, []).get(s.name)!).push(r.rps);
        (cpu.get(s.name) ?? cpu.set(s.name, []).get(s.name)!).push(micros);
        process.stdout.write(`  round ${round + 1} ${s.name}: ${Math.round(r.rps)}/s, ${micros.toFixed(1)} µs CPU per Lease\n`);
      }
    }
    const noopRate = median(rates.get("grpc-js no-op server")!);
    const noopCpu = median(cpu.get("grpc-js no-op server")!);
    process.stdout.write(`\nLease, ${keys} keys, h2load 4 connections x 16 streams, ${rounds} rounds of ${requests} (medians; load average ${os.loadavg()[0].toFixed(1)}):\n`);
    for (const s of servers) {
      const rate = median(rates.get(s.name)!);
      const micros = median(cpu.get(s.name)!);
      process.stdout.write(`| ${s.name} | ${Math.round(rate)}/s | ${(rate / noopRate).toFixed(2)} | ${micros.toFixed(0)} µs | ${(micros / noopCpu).toFixed(2)} |\n`);
    }
  } finally {
    for (const s of servers) await s.handle.stop();
  }
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
