/**
 * What a native-port Lease leaves for the young-generation collector, side by side with other
 * builds: each server (100,000 keys by default, its own fresh state file, KEYPOOL_REUSE_DELAY=0,
 * as bench/native-lease-ab.ts) runs with `--trace-gc-nvp`; h2load sends the same Leases to each in
 * alternating rounds, and the scavenges of each round are summed: bytes that survived a
 * scavenge, copied within the young generation (new_space_survived) or promoted to the old one
 * (promoted), per Lease, and the scavengers' pause per Lease. A young object that survives costs a copy per scavenge it lives
 * through; one that dies costs nothing.
 *
 *   npx tsx bench/lease-gc-survivors.ts [--keys=100000] [--rounds=3] [--requests=15000] [--baseline=<dir>[,<dir>...]] [--state=memory] [--warm=110000] [--full-gc]
 *
 * `--warm=N` sends each server N Leases before the rounds (with N above the key count, every
 * key has been leased once). `--full-gc`: each server runs one full collection 150 ms into every
 * round (bench/lib/full-gc-on-signal.cjs), so that most of the round's Leases travel on
 * connections that have outlived a full collection, as a proxy's long-lived channel does
 * (BENCHMARKS.md §5, "Long-lived connections after a full collection").
 */
import * as os from "node:os";
import * as path from "node:path";
import { coreLayout } from "./lib/children";
import { h2load } from "./lib/h2load";
import { LEASE, leaseOnce, leaseRequestBytes } from "./lib/keypool-rpc";
import { FULL_GC_ON_SIGNAL, fullCollectionSoon, startKeypool, type ServerHandle } from "./lib/keypool-server";
import { leaseBenchEnv, writeKeysFile } from "./lib/keys-file";
import { median } from "./lib/stats";
import { benchArg, buildsToCompare } from "./lib/ab-args";

interface Scavenges {
  count: number;
  survivedBytes: number;
  promotedBytes: number;
  pauseMs: number;
  /** Mark-compacts (gc=mc): after one under load, later calls' transport objects survive scavenges (BENCHMARKS.md §5). */
  markCompacts: number;
}

/** Sums the scavenges (gc=s) in `--trace-gc-nvp` output. */
function scavenges(text: string): Scavenges {
  const out: Scavenges = { count: 0, survivedBytes: 0, promotedBytes: 0, pauseMs: 0, markCompacts: 0 };
  for (const line of text.split("\n")) {
    if (line.includes(" gc=mc ")) out.markCompacts++;
    if (!line.includes(" gc=s ")) continue;
    const field = (name: string) => Number(new RegExp(`\\b${name}=([\\d.]+)`).exec(line)?.[1] ?? 0);
    out.count++;
    out.survivedBytes += field("new_space_survived");
    out.promotedBytes += field("promoted");
    out.pauseMs += field("pause");
  }
  return out;
}

async function main(): Promise<void> {
  const keys = Number(benchArg("keys", "100000"));
  const rounds = Number(benchArg("rounds", "3"));
  const requests = Number(benchArg("requests", "15000"));
  const state = benchArg("state", "");
  const warm = Number(benchArg("warm", "0"));
  const fullGc = process.argv.includes("--full-gc");
  const nodeArgs = ["--trace-gc-nvp", ...(fullGc ? FULL_GC_ON_SIGNAL : [])];
  const builds = buildsToCompare();
  const cores = coreLayout();
  const load = os.loadavg();
  const keysFile = path.join(os.tmpdir(), `keypool-gc-keys-${keys}.json`);
  writeKeysFile(keysFile, keys);
  const env = leaseBenchEnv(keysFile, state);
  const servers: { label: string; handle: ServerHandle; perLease: { survived: number[]; promoted: number[]; pauseUs: number[]; count: number[] } }[] = [];
  try {
    for (const build of builds) {
      const handle = await startKeypool({ env, cpus: cores.server, nativePort: true, nodeArgs, main: build.main, deadlineMs: 180_000 });
      await leaseOnce(handle.port);
      servers.push({ label: build.label, handle, perLease: { survived: [], promoted: [], pauseUs: [], count: [] } });
    }
    const body = leaseRequestBytes();
    if (warm > 0) {
      for (const server of servers) await h2load(server.handle.grpcPort!, LEASE, body, { requests: warm, connections: 4, streamsPerConnection: 16 }, cores.load);
    }
    for (let round = 1; round <= rounds; round++) {
      for (const server of round % 2 === 1 ? servers : [...servers].reverse()) {
        const before = scavenges(server.handle.proc.stdout());
        const leasing = h2load(server.handle.grpcPort!, LEASE, body, { requests, connections: 4, streamsPerConnection: 16 }, cores.load);
        if (fullGc) await fullCollectionSoon(server.handle.pid);
        const result = await leasing;
        const after = scavenges(server.handle.proc.stdout());
        const n = result.succeeded;
        const s = {
          survived: (after.survivedBytes - before.survivedBytes) / n,
          promoted: (after.promotedBytes - before.promotedBytes) / n,
          pauseUs: ((after.pauseMs - before.pauseMs) * 1000) / n,
          count: after.count - before.count,
          markCompacts: after.markCompacts - before.markCompacts,
        };
        server.perLease.survived.push(s.survived);
        server.perLease.promoted.push(s.promoted);
        server.perLease.pauseUs.push(s.pauseUs);
        server.perLease.count.push(s.count);
        console.log(
          `  round ${round} ${server.label}: ${n} Leases at ${result.rps.toFixed(0)}/s, ${s.count} scavenges, ${s.markCompacts} mark-compacts, ` +
            `${s.survived.toFixed(0)} B kept young and ${s.promoted.toFixed(0)} B promoted per Lease, scavenge pause ${s.pauseUs.toFixed(1)} µs per Lease`,
        );
      }
    }
    const end = os.loadavg();
    console.log(
      `\n${keys} keys, native port${fullGc ? ", a full collection 150 ms into each round" : ""}, h2load 4 connections x 16 streams, ${rounds} rounds of ${requests} Leases, medians; load average ${load.map((l) => l.toFixed(1)).join(" ")} at the start, ${end.map((l) => l.toFixed(1)).join(" ")} at the end:`,
    );
    console.log("| server | scavenges per round | bytes a scavenge kept young, per Lease | bytes promoted, per Lease | scavenge pause per Lease |");
    console.log("|---|---|---|---|---|");
    for (const { label, perLease } of servers) {
      console.log(
        `| ${label} | ${median(perLease.count).toFixed(0)} | ${median(perLease.survived).toFixed(0)} B | ${median(perLease.promoted).toFixed(0)} B | ${median(perLease.pauseUs).toFixed(1)} µs |`,
      );
    }
  } finally {
    for (const server of servers) await server.handle.stop();
  }
}

main().catch((error) => {
  console.error(error);
  process.exit(1);
});
