/**
 * A fresh server's first Lease rounds and their mark-compacts, side by side with other builds:
 * each build's keypool (100,000 keys by default, native port, KEYPOOL_REUSE_DELAY=0, as
 * bench/native-lease-ab.ts) runs with `--trace-gc`; right after SERVING, h2load sends rounds of
 * Leases, each followed by a round of Health/Check, the builds alternating. Per round: the rate,
 * the server's CPU per call (all threads, and its main thread), its scavenges, and each
 * mark-compact with the old generation's size before and after and V8's reason. A mark-compact
 * while calls are in flight leaves node's HTTP/2 sessions promoting every later call's objects
 * (BENCHMARKS.md §5, "What the collector copies per call"); this shows whether and when a build's
 * first Leases meet one, and what it costs them.
 *
 *   npx tsx bench/lease-start-gc.ts [--keys=100000] [--rounds=3] [--requests=15000] [--state=memory] [--baseline=<dir>[,<dir>...]]
 */
import * as os from "node:os";
import * as path from "node:path";
import { create, toBinary } from "@bufbuild/protobuf";
import { HealthCheckRequestSchema } from "../gen/ts/grpc/health/v1/health_pb";
import { coreLayout, cpuMs, mainThreadCpuMs } from "./lib/children";
import { h2load } from "./lib/h2load";
import { CHECK, LEASE, leaseRequestBytes } from "./lib/keypool-rpc";
import { startKeypool, type ServerHandle } from "./lib/keypool-server";
import { leaseBenchEnv, writeKeysFile } from "./lib/keys-file";
import { benchArg, buildsToCompare } from "./lib/ab-args";

/** The mark-compact lines of `--trace-gc` output, shortened to sizes, pause and reason. */
function markCompacts(text: string): string[] {
  return text
    .split("\n")
    .filter((line) => line.includes("Mark-Compact"))
    .map((line) => {
      const sizes = /Mark-Compact ([\d.]+) \(([\d.]+)\) -> ([\d.]+) \(([\d.]+)\) MB, ([\d.]+)/.exec(line);
      const reason = /current mu = [\d.]+\) (.*)$/.exec(line)?.[1] ?? "";
      return sizes ? `mark-compact ${sizes[1]} -> ${sizes[3]} MB (heap ${sizes[2]} -> ${sizes[4]} MB), pause ${sizes[5]} ms: ${reason}` : line.trim();
    });
}

async function main(): Promise<void> {
  const keys = Number(benchArg("keys", "100000"));
  const rounds = Number(benchArg("rounds", "3"));
  const requests = Number(benchArg("requests", "15000"));
  const state = benchArg("state", "");
  const builds = buildsToCompare();
  const cores = coreLayout();
  const keysFile = path.join(os.tmpdir(), `keypool-start-gc-keys-${keys}.json`);
  writeKeysFile(keysFile, keys);
  const env = leaseBenchEnv(keysFile, state);
  const shape = { requests, connections: 4, streamsPerConnection: 16 };
  const calls = [
    { method: "Lease", path: LEASE, body: leaseRequestBytes() },
    { method: "Check", path: CHECK, body: toBinary(HealthCheckRequestSchema, create(HealthCheckRequestSchema, {})) },
  ];
  console.log(`# ${keys} keys${state ? `, KEYPOOL_STATE=${state}` : ""}; h2load 4 connections x 16 streams, ${requests} calls a round; load average ${os.loadavg().map((l) => l.toFixed(1)).join(" ")}`);
  const servers: { label: string; handle: ServerHandle; seen: number }[] = [];
  try {
    for (const build of builds) {
      const handle = await startKeypool({ env, cpus: cores.server, nativePort: true, nodeArgs: ["--trace-gc"], main: build.main, deadlineMs: 180_000 });
      console.log(`${build.label}: SERVING after ${handle.startMs.toFixed(0)} ms; during the start:`);
      for (const line of markCompacts(handle.proc.stdout())) console.log(`    ${line}`);
      servers.push({ label: build.label, handle, seen: handle.proc.stdout().length });
    }
    for (let round = 1; round <= rounds; round++) {
      for (const server of round % 2 === 1 ? servers : [...servers].reverse()) {
        for (const call of calls) {
          const { handle } = server;
          const cpu = cpuMs(handle.pid);
          const main = mainThreadCpuMs(handle.pid);
          const result = await h2load(handle.grpcPort!, call.path, call.body, shape, cores.load);
          if (result.failed) throw new Error(`${server.label}: ${result.failed} ${call.method} calls failed`);
          const perCall = ((cpuMs(handle.pid) - cpu) * 1000) / result.requests;
          const mainPerCall = ((mainThreadCpuMs(handle.pid) - main) * 1000) / result.requests;
          const out = handle.proc.stdout().slice(server.seen);
          server.seen = handle.proc.stdout().length;
          const scavenges = out.split("\n").filter((line) => line.includes("Scavenge")).length;
          console.log(
            `  round ${round} ${server.label} ${call.method}: ${result.rps.toFixed(0)}/s, ${perCall.toFixed(1)} µs CPU per call (main thread ${mainPerCall.toFixed(1)}), ${scavenges} scavenges`,
          );
          for (const line of markCompacts(out)) console.log(`    ${line}`);
        }
      }
    }
  } finally {
    for (const server of servers) await server.handle.stop();
  }
}

main().catch((error) => {
  console.error(error);
  process.exit(1);
});
