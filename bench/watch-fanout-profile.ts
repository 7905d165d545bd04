/**
 * The WatchKeys fan-out of bench/run.ts (section "fanout"), one pass, with the server under
 * `node --cpu-prof`, or against another build, to see where its time goes per message.
 *
 *   npx tsx bench/watch-fanout-profile.ts [--rate=0|half-max|<Leases/s>] [--subscribers=1000] [--seconds=10] [--coalesce=100]
 *                                         [--port=main|native] [--batch] [--no-profile] [--main=/path/to/dist/src/main.js]
 *                                         [--client-processes=N] [--trace-gc]
 *
 * Prints the fan-out figures (as bench/run.ts does), then the self time by package and the
 * functions with the most self time while the subscribers were counting (from one second after
 * READY to one second before the end: the probes, under the Lease load when there is one; the
 * server's start and the Lease maximum's measurement left out); the .cpuprofile stays in
 * bench/results/. --no-profile measures without the profiler (e.g. to
 * compare two builds side by side with --main).
 */
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { coreLayout } from "./lib/children";
import { writeKeysFile } from "./lib/keys-file";
import { ROOT } from "./lib/keypool-server";
import { profileWindow, selfTimeByPackage, topFunctions, type Profile } from "./profile-server";
import { measureFanout } from "./watch-fanout";

async function main(): Promise<void> {
  const arg = (name: string, fallback: string) => process.argv.find((a) => a.startsWith(`--${name}=`))?.slice(name.length + 3) ?? fallback;
  const rateArg = arg("rate", "0");
  const rate = rateArg === "half-max" ? "half-max" : Number(rateArg);
  const port = arg("port", "main") === "native" ? "native" : "main";
  const batch = process.argv.includes("--batch");
  const subscribers = Number(arg("subscribers", "1000"));
  const seconds = Number(arg("seconds", "10"));
  const coalesceMs = Number(arg("coalesce", "100"));
  const profile = !process.argv.includes("--no-profile");
  const mainJs = arg("main", "") || undefined;
  const clientProcesses = Number(arg("client-processes", "1"));
  const traceGc = process.argv.includes("--trace-gc");
  const cores = coreLayout();
  const tmp = mkdtempSync(path.join(os.tmpdir(), "keypool-fanout-profile-"));
  const keysFile = path.join(tmp, "keys.json");
  writeKeysFile(keysFile, 10, { withMarker: true });
  const dir = path.join(ROOT, "bench", "results", `profile-fanout-${rate}-${Date.now()}`);
  if (profile) mkdirSync(dir, { recursive: true });
  const log = (line: string) => process.stderr.write(line + "\n");
  try {
    const r = await measureFanout(
      keysFile,
      { subscribers, coalesceMs, leaseRate: rate, durationS: seconds, probeIntervalMs: 300, port, batch, main: mainJs, clientProcesses, traceGc, nodeArgs: profile ? ["--cpu-prof", `--cpu-prof-dir=${dir}`] : [] },
      cores,
      { KEYPOOL_REUSE_DELAY: "0", KEYPOOL_LOG_LEVEL: "warn" },
      log,
    );
    process.stdout.write(
      `p50 ${r.p50Ms.toFixed(1)} ms, p99 ${r.p99Ms.toFixed(1)} ms, max ${r.maxMs.toFixed(1)} ms, last subscriber p99 ${r.lastSubscriberP99Ms.toFixed(1)} ms; ` +
        `${Math.round(r.messagesPerSec)} messages/s, server ${(r.serverCpuShare * 100).toFixed(0)}% of a core, load generator ${(r.generatorCpuShare * 100).toFixed(0)}% ` +
        `(${r.clientProcesses} process(es), event-loop delay p99 ${r.generatorLoopDelayP99Ms.toFixed(1)} ms, max ${r.generatorLoopDelayMaxMs.toFixed(1)} ms), ${r.serverCpuMicrosPerMessage.toFixed(0)} µs/message; ` +
        `probes with p99 over 250 ms ${r.probesOver250Ms} of ${r.probes}; ` +
        (r.markCompacts !== undefined ? `server GC ${r.markCompacts} mark-compacts (${r.markCompactMs!.toFixed(0)} ms), ${r.scavenges} scavenges (${r.scavengeMs!.toFixed(0)} ms); ` : "") +
        `${Math.round(r.lease.rps)} Lease/s (asked ${r.leaseRateTarget}, p99 ${r.lease.p99Ms.toFixed(1)} ms); superseded ${r.superseded}, missed ${r.missed}, RSS ${r.serverRssMiB.toFixed(0)} MiB\n`,
    );
    if (!profile) return;
    const file = readdirSync(dir).find((f) => f.endsWith(".cpuprofile"));
    if (!file) throw new Error(`no profile written in ${dir}`);
    const whole = JSON.parse(readFileSync(path.join(dir, file), "utf8")) as Profile;
    // The probes that count: after the 1 s warm-up and the Lease load's lead.
    const probing = profileWindow(whole, r.countingFromUs + 1_000_000 + r.leadMs * 1000, r.countingToUs - 1_000_000);
    const lines = (rows: { name: string; ms: number; share: number }[]) =>
      rows.map((t) => `${t.ms.toFixed(0).padStart(7)} ms ${(t.share * 100).toFixed(1).padStart(5)}%  ${t.name}`).join("\n");
    const text = `self time by package:\n${lines(selfTimeByPackage(probing, 25))}\n\nself time by function:\n${lines(topFunctions(probing, 40))}`;
    writeFileSync(path.join(dir, "top.txt"), text + "\n");
    process.stdout.write(text + `\nprofile: ${path.join(dir, file)}\n`);
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
}

if (require.main === module) {
  main().catch((e) => {
    console.error(e);
    process.exit(1);
  });
}
