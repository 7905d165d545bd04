/**
 * The WatchKeys fan-out (bench/watch-fanout.ts), side by side: this build and another
 * (`--baseline=<dir>`, holding a build's dist/), in rounds whose order alternates, so that a
 * shared machine's noise falls on both. Each round is one fan-out pass per build and per Lease
 * rate asked (`--rates=0,half-max`: no Lease load, and half the Lease maximum each server measures
 * before its subscribers open). Prints every pass, then per build and rate the medians: change-to-
 * arrival p50 / p99, the last subscriber's p99, messages delivered per second, the server's share
 * of its core, its CPU per message (with no Lease load, the cost of one message), and Leases/s.
 *
 *   npx tsx bench/watch-fanout-ab.ts --baseline=/tmp/base-2a80341 [--port=native|main] [--rates=0,half-max]
 *                                    [--rounds=3] [--seconds=8] [--subscribers=1000] [--no-batch]
 */
import { mkdtempSync, rmSync } from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { coreLayout } from "./lib/children";
import { writeKeysFile } from "./lib/keys-file";
import { fmt, median } from "./lib/stats";
import { measureFanout, type FanoutResult } from "./watch-fanout";

async function main(): Promise<void> {
  const arg = (name: string, fallback: string) => process.argv.find((a) => a.startsWith(`--${name}=`))?.slice(name.length + 3) ?? fallback;
  const port = arg("port", "native") === "main" ? "main" : "native";
  const rates = arg("rates", "0,half-max").split(",").map((r) => (r === "half-max" ? ("half-max" as const) : Number(r)));
  const rounds = Number(arg("rounds", "3"));
  const seconds = Number(arg("seconds", "8"));
  const subscribers = Number(arg("subscribers", "1000"));
  const batch = !process.argv.includes("--no-batch");
  const baseline = arg("baseline", "");
  const builds: { label: string; main?: string }[] = [{ label: "this build" }];
  if (baseline) builds.push({ label: baseline, main: path.join(baseline, "dist", "src", "main.js") });
  const cores = coreLayout();
  const tmp = mkdtempSync(path.join(os.tmpdir(), "keypool-fanout-ab-"));
  const keysFile = path.join(tmp, "keys.json");
  writeKeysFile(keysFile, 10, true);
  const log = (line: string) => process.stderr.write(line + "\n");
  const print = (line: string) => process.stdout.write(line + "\n");
  print(`# fan-out side by side: ${port} port, ${subscribers} subscribers${batch ? " with batch" : ""}, coalesce 100 ms, ${seconds} s per pass, ${rounds} rounds`);
  print(`# load average at start: ${os.loadavg().map((l) => l.toFixed(2)).join(" ")} (${new Date().toISOString()})`);
  const results = new Map<string, FanoutResult[]>();
  try {
    for (let round = 0; round < rounds; round++) {
      const order = round % 2 === 0 ? builds : [...builds].reverse();
      for (const rate of rates) {
        for (const build of order) {
          const r = await measureFanout(
            keysFile,
            { subscribers, coalesceMs: 100, leaseRate: rate, durationS: seconds, probeIntervalMs: 300, port, batch, main: build.main },
            cores,
            { KEYPOOL_REUSE_DELAY: "0", KEYPOOL_LOG_LEVEL: "warn" },
            log,
          );
          const key = `${build.label}\u0000${rate}`;
          results.set(key, [...(results.get(key) ?? []), r]);
          print(
            `round ${round + 1} ${build.label} rate ${rate}${r.leaseMaxRps ? ` (max ${Math.round(r.leaseMaxRps)}/s)` : ""}: p50 ${fmt(r.p50Ms)} ms, p99 ${fmt(r.p99Ms)} ms, last subscriber p99 ${fmt(r.lastSubscriberP99Ms)} ms, ` +
              `${Math.round(r.messagesPerSec)} messages/s, server ${(r.serverCpuShare * 100).toFixed(0)}%, ${fmt(r.serverCpuMicrosPerMessage)} µs/message, ` +
              `${Math.round(r.lease.rps)} Lease/s (asked ${r.leaseRateTarget}), generator ${(r.generatorCpuShare * 100).toFixed(0)}%, missed ${r.missed}, RSS ${r.serverRssMiB.toFixed(0)} MiB; load ${os.loadavg()[0]!.toFixed(2)}`,
          );
        }
      }
    }
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
  print("");
  print("| build | Lease rate asked | p50 ms | p99 ms | last subscriber p99 ms | messages/s | server | µs/message | Lease/s |");
  print("|---|---|---|---|---|---|---|---|---|");
  for (const rate of rates) {
    for (const build of builds) {
      const rs = results.get(`${build.label}\u0000${rate}`) ?? [];
      const m = (f: (r: FanoutResult) => number) => median(rs.map(f));
      print(
        `| ${build.label} | ${rate === "half-max" ? `half max (${Math.round(m((r) => r.leaseRateTarget))})` : rate} | ${fmt(m((r) => r.p50Ms))} | ${fmt(m((r) => r.p99Ms))} | ${fmt(m((r) => r.lastSubscriberP99Ms))} | ` +
          `${Math.round(m((r) => r.messagesPerSec))} | ${(m((r) => r.serverCpuShare) * 100).toFixed(0)}% | ${fmt(m((r) => r.serverCpuMicrosPerMessage))} | ${Math.round(m((r) => r.lease.rps))} |`,
      );
    }
  }
  print(`# load average at end: ${os.loadavg().map((l) => l.toFixed(2)).join(" ")} (${new Date().toISOString()})`);
}

if (require.main === module) {
  main().catch((e) => {
    console.error(e);
    process.exit(1);
  });
}
