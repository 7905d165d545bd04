/**
 * The WatchKeys fan-out (bench/watch-fanout.ts), side by side: this build and another
 * (`--baseline=<dir>`, holding a build's dist/), in rounds whose order alternates, so that a
 * shared machine's noise falls on both. Each round is one fan-out pass per build and per Lease
 * rate asked (`--rates=0,half-max`: no Lease load, and half the Lease maximum each server measures
 * before its subscribers open). Prints every pass, then per build and rate the medians: change-to-
 * arrival p50 / p99 (and the p99 of every round's arrivals together), the last subscriber's p99,
 * the onset's p99, messages delivered per second, the server's share
 * of its core, its CPU per message (with no Lease load, the cost of one message), and Leases/s.
 *
 *   npx tsx bench/watch-fanout-ab.ts --baseline=/tmp/base-2a80341 [--port=native|main] [--rates=0,half-max]
 *                                    [--rounds=3] [--seconds=8] [--lead=5] [--subscribers=1000] [--no-batch]
 *                                    [--client-processes=1[,4]] [--trace-gc] [--trace-probes] [--server-flag=--max-semi-space-size=32]
 *
 * --seconds: how long the probes that count are sent; under Lease load they start --lead seconds
 * after it, and the probes of that lead are reported apart as its onset (`--lead=0`: none, every
 * probe counts from the first Lease, as before).
 * --client-processes: how many processes the subscribers are split over (a list measures each in
 * the same rounds). 1 is the original shape: one process holds the 1,000 subscribers and also
 * sends the probes and the Lease load, so its own event loop's delays count in every arrival.
 * With more, the first process drives and each holds its share of the subscribers (all on the
 * load core still). --trace-gc runs each server with --trace-gc and prints its mark-compacts and
 * scavenges during the pass. --trace-probes prints a line per probe after each pass: its arrivals
 * and the server's event-loop stalls and collections while it travelled (bench/lib/server-trace.ts).
 * --server-flag=<flag> (repeatable): a node or V8 flag for this build's
 * server only, as in bench/native-lease-ab.ts and bench/watch-memory.bench.ts, to measure a flag
 * beside the same code without it (`--baseline=.`).
 */
import { mkdtempSync, rmSync } from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { coreLayout } from "./lib/children";
import { writeKeysFile } from "./lib/keys-file";
import { fmt, median, summarize } from "./lib/stats";
import { measureFanout, type FanoutResult } from "./watch-fanout";

async function main(): Promise<void> {
  const arg = (name: string, fallback: string) => process.argv.find((a) => a.startsWith(`--${name}=`))?.slice(name.length + 3) ?? fallback;
  const port = arg("port", "native") === "main" ? "main" : "native";
  const rates = arg("rates", "0,half-max").split(",").map((r) => (r === "half-max" ? ("half-max" as const) : Number(r)));
  const rounds = Number(arg("rounds", "3"));
  const seconds = Number(arg("seconds", "8"));
  const leadS = Number(arg("lead", "5"));
  const subscribers = Number(arg("subscribers", "1000"));
  const batch = !process.argv.includes("--no-batch");
  const processCounts = arg("client-processes", "1").split(",").map(Number);
  const traceGc = process.argv.includes("--trace-gc");
  const traceProbes = process.argv.includes("--trace-probes");
  const baseline = arg("baseline", "");
  const nodeArgs = process.argv.filter((a) => a.startsWith("--server-flag=")).map((a) => a.slice("--server-flag=".length));
  const builds: { label: string; main?: string; nodeArgs?: string[] }[] = [{ label: nodeArgs.length ? `this build (${nodeArgs.join(" ")})` : "this build", nodeArgs }];
  if (baseline) builds.push({ label: baseline, main: path.join(baseline, "dist", "src", "main.js") });
  const cores = coreLayout();
  const tmp = mkdtempSync(path.join(os.tmpdir(), "keypool-fanout-ab-"));
  const keysFile = path.join(tmp, "keys.json");
  writeKeysFile(keysFile, 10, { withMarker: true });
  const log = (line: string) => process.stderr.write(line + "\n");
  const print = (line: string) => process.stdout.write(line + "\n");
  print(
    `# fan-out side by side: ${port} port, ${subscribers} subscribers${batch ? " with batch" : ""} over ${processCounts.join(" or ")} client process(es), coalesce 100 ms, ${seconds} s per pass counted after ${leadS} s of Lease load (its onset reported apart), ${rounds} rounds`,
  );
  print(`# load average at start: ${os.loadavg().map((l) => l.toFixed(2)).join(" ")} (${new Date().toISOString()})`);
  const results = new Map<string, FanoutResult[]>();
  try {
    for (let round = 0; round < rounds; round++) {
      const order = round % 2 === 0 ? builds : [...builds].reverse();
      for (const rate of rates) {
        for (const build of order) {
          for (const clientProcesses of processCounts) {
            const r = await measureFanout(
              keysFile,
              { subscribers, coalesceMs: 100, leaseRate: rate, durationS: seconds, leadS, probeIntervalMs: 300, port, batch, main: build.main, nodeArgs: build.nodeArgs, clientProcesses, traceGc, traceProbes },
              cores,
              { KEYPOOL_REUSE_DELAY: "0", KEYPOOL_LOG_LEVEL: "warn" },
              log,
            );
            const key = `${build.label}\u0000${rate}\u0000${clientProcesses}`;
            results.set(key, [...(results.get(key) ?? []), r]);
            const onset = r.onset ? `, onset p99 ${fmt(r.onset.p99Ms)} ms (${r.onset.probes} probes)` : "";
            const gc = r.markCompacts !== undefined ? `, server GC ${r.markCompacts} mark-compacts (${fmt(r.markCompactMs!)} ms) ${r.scavenges} scavenges (${fmt(r.scavengeMs!)} ms)` : "";
            print(
              `round ${round + 1} ${build.label} rate ${rate} clients ${clientProcesses}${r.leaseMaxRps ? ` (max ${Math.round(r.leaseMaxRps)}/s)` : ""}: p50 ${fmt(r.p50Ms)} ms, p99 ${fmt(r.p99Ms)} ms, last subscriber p99 ${fmt(r.lastSubscriberP99Ms)} ms, probes with p99 over 250 ms ${r.probesOver250Ms} of ${r.probes}${onset}, ` +
                `${Math.round(r.messagesPerSec)} messages/s, server ${(r.serverCpuShare * 100).toFixed(0)}%, ${fmt(r.serverCpuMicrosPerMessage)} µs/message, ` +
                `${Math.round(r.lease.rps)} Lease/s (asked ${r.leaseRateTarget}), Lease p99 ${fmt(r.lease.p99Ms)} ms, generator ${(r.generatorCpuShare * 100).toFixed(0)}% (loop delay p99 ${fmt(r.generatorLoopDelayP99Ms)} ms, max ${fmt(r.generatorLoopDelayMaxMs)} ms)${gc}, missed ${r.missed}, RSS ${r.serverRssMiB.toFixed(0)} MiB; load ${os.loadavg()[0]!.toFixed(2)}`,
            );
            for (const line of r.probeTimeline ?? []) print(`  ${line}`);
          }
        }
      }
    }
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
  print("");
  print("| build | client processes | Lease rate asked | p50 ms | p99 ms | p99 of all rounds' arrivals ms | last subscriber p99 ms | onset p99 ms | messages/s | server | µs/message | Lease/s | Lease p99 ms | generator loop delay p99 ms |");
  print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|");
  for (const rate of rates) {
    for (const clientProcesses of processCounts) {
      for (const build of builds) {
        const rs = results.get(`${build.label}\u0000${rate}\u0000${clientProcesses}`) ?? [];
        const m = (f: (r: FanoutResult) => number) => median(rs.map(f));
        // One slow round barely moves a median of per-round p99s: the pooled p99 shows it.
        const pooled = summarize(Float64Array.from(rs.flatMap((r) => Array.from(r.latencies))));
        print(
          `| ${build.label} | ${clientProcesses} | ${rate === "half-max" ? `half max (${Math.round(m((r) => r.leaseRateTarget))})` : rate} | ${fmt(m((r) => r.p50Ms))} | ${fmt(m((r) => r.p99Ms))} | ${fmt(pooled.p99Ms)} | ${fmt(m((r) => r.lastSubscriberP99Ms))} | ${fmt(m((r) => r.onset?.p99Ms ?? NaN))} | ` +
            `${Math.round(m((r) => r.messagesPerSec))} | ${(m((r) => r.serverCpuShare) * 100).toFixed(0)}% | ${fmt(m((r) => r.serverCpuMicrosPerMessage))} | ${Math.round(m((r) => r.lease.rps))} | ` +
            `${fmt(m((r) => r.lease.p99Ms))} | ${fmt(m((r) => r.generatorLoopDelayP99Ms))} |`,
        );
      }
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
