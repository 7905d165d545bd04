/**
 * The open storm seen from inside the server: 1,000 WatchKeys watchers open at once on 1,000 keys
 * (bench/watch-audience.ts, mode read) and the server reports every event-loop stall over 16 ms
 * (bench/lib/loop-stalls.cjs). A call that arrives during a stall waits for it, so the stalls are
 * what the storm's probe p99 (bench/watch-memory.bench.ts) measures from outside, without the
 * probe's own scheduling on a shared machine. This build and another one, alternating.
 *
 *     npm run build && npx tsx bench/watch-storm-stalls.ts --baseline=<built source tree> [--port=main|native] [--rounds=2] [--renice] [--profile] [--trace-gc | --survivors] [--live-heap] [--server-flag=<flag>]
 *
 * `--renice` runs the server at nice -15 (root only), so that other work on a shared machine
 * takes less of its core. `--profile` runs the server with node's CPU profiler and prints, for
 * the three longest busy stretches of the storm (no idle sample between), the functions with
 * the most self and inclusive time, and the same for the two longest stalls (every sample in the
 * stall's window: a stall can hold idle samples, when its work waits for the core, and then
 * shows as no single busy stretch): what the stalls are made of. The profiler slows the server;
 * its stall figures are not comparable with a run without it. `--trace-gc` runs the server with
 * V8's --trace-gc and lists the storm's collections of 5 ms and more beside its stalls, each at
 * its time from the storm's start: which stalls are collections, of what kind and size.
 * `--server-flag=<flag>` (repeatable) gives both builds' servers a node or V8 flag, to diagnose.
 * `--survivors` runs the server with V8's --trace-gc-nvp and sums the storm's collections: what
 * the young-generation collector copied (bytes that survived a scavenge or were promoted, mark-
 * compacts' evacuation included), and the pauses, in total and over 10 ms: the work that the
 * 1,000 streams' surviving objects cost, which no pacing of the intake spreads below one pause.
 * `--live-heap` runs the server with V8's sampling heap profiler (bench/lib/live-heap-sampler.cjs)
 * and prints what the storm left alive once every watcher has its snapshot, per open stream, by
 * the code that allocated it (the innermost frame of keypool, grpc-js or connect; node's own
 * objects under the frame that asked for them): what each stream keeps, which the scavenges
 * copy while the streams open.
 */
import { execFileSync } from "node:child_process";
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { coreLayout, cpuMs, sleep, start } from "./lib/children";
import { ROOT, startKeypool } from "./lib/keypool-server";
import { writeKeysFile } from "./lib/keys-file";
import { collections, LOOP_STALLS, stallsOf } from "./lib/server-trace";

interface StormStalls {
  syncedMs: number;
  serverCpuMs: number;
  /** Stalls over 16 ms from the storm's start to the last snapshot, in ms, in order. */
  stalls: number[];
  /** With --profile: the storm's longest busy stretches, described. */
  profile?: string;
  /** With --trace-gc: the stalls and the collections of 5 ms and more, by time from the storm's start. */
  timeline?: string;
  /** With --survivors: the storm's collections summed (--trace-gc-nvp). */
  survivors?: string;
  /** With --live-heap: what the open streams keep, by owner. */
  liveHeap?: string;
}

interface SamplingProfile {
  head: SamplingNode;
  samples: { size: number; nodeId: number }[];
}
interface SamplingNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  children: SamplingNode[];
}

/** Live bytes of a sampling heap profile by owner: the innermost frame of keypool, grpc-js or connect. */
function liveByOwner(profile: SamplingProfile): Map<string, number> {
  const ownerOf = new Map<number, string>();
  const walk = (node: SamplingNode, owner: string) => {
    const url = node.callFrame.url;
    const own = url.includes("/dist/src/") ? `keypool ${url.split("/dist/src/")[1]}` : url.includes("@grpc/grpc-js") ? "grpc-js" : url.includes("@connectrpc") ? "connect" : undefined;
    const mine = own ?? owner;
    ownerOf.set(node.id, mine);
    for (const child of node.children) walk(child, mine);
  };
  walk(profile.head, "node (no keypool, grpc-js or connect frame)");
  const bytes = new Map<string, number>();
  for (const sample of profile.samples) {
    const owner = ownerOf.get(sample.nodeId)!;
    bytes.set(owner, (bytes.get(owner) ?? 0) + sample.size);
  }
  return bytes;
}

function liveHeapGrowth(before: SamplingProfile, after: SamplingProfile, streams: number): string {
  const a = liveByOwner(before);
  const b = liveByOwner(after);
  const rows = [...new Set([...a.keys(), ...b.keys()])].map((owner) => ({ owner, bytes: (b.get(owner) ?? 0) - (a.get(owner) ?? 0) })).sort((x, y) => y.bytes - x.bytes);
  const total = rows.reduce((sum, r) => sum + r.bytes, 0);
  return [
    `  live heap added by the storm (sampled): ${(total / 1e6).toFixed(1)} MB, ${(total / streams / 1024).toFixed(1)} KiB per open stream; by owner:`,
    ...rows.filter((r) => r.bytes >= 100_000).map((r) => `    ${(r.bytes / 1e6).toFixed(2).padStart(6)} MB ${r.owner}`),
  ].join("\n");
}

interface CpuProfile {
  nodes: { id: number; callFrame: { functionName: string; url: string; lineNumber: number }; children?: number[] }[];
  startTime: number;
  samples: number[];
  timeDeltas: number[];
}

/**
 * The longest busy stretches of a CPU profile between `fromUs` and `toUs` (CLOCK_MONOTONIC
 * microseconds, the clock of both V8's profiler and process.hrtime), each with its top functions.
 */
function busyStretches(profile: CpuProfile, fromUs: number, toUs: number, count: number, windows: { fromUs: number; toUs: number; label: string }[] = []): string {
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const parent = new Map<number, number>();
  for (const n of profile.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
  const name = (id: number) => {
    const cf = byId.get(id)!.callFrame;
    return `${cf.functionName || "(anonymous)"} ${cf.url.replace(/.*node_modules\//, "").replace(/.*\/(src|dist)\//, "$1/")}:${cf.lineNumber}`;
  };
  const idle = (id: number) => ["(idle)", "(program)"].includes(byId.get(id)!.callFrame.functionName);
  const stretches: { from: number; to: number; ms: number }[] = [];
  let at = profile.startTime;
  let from = -1;
  let fromAt = 0;
  profile.samples.forEach((id, i) => {
    at += profile.timeDeltas[i] ?? 0;
    if (at < fromUs || at > toUs) return;
    if (!idle(id)) {
      if (from < 0) [from, fromAt] = [i, at];
    } else if (from >= 0) {
      stretches.push({ from, to: i, ms: (at - fromAt) / 1000 });
      from = -1;
    }
  });
  const out: string[] = [];
  const chosen: { from: number; to: number; ms: number; label?: string }[] = stretches.sort((a, b) => b.ms - a.ms).slice(0, count);
  for (const window of windows) {
    // The samples inside a stall's window, whatever they are.
    let t = profile.startTime;
    let first = -1;
    let last = -1;
    profile.samples.forEach((_, i) => {
      t += profile.timeDeltas[i] ?? 0;
      if (t < window.fromUs || t > window.toUs) return;
      if (first < 0) first = i;
      last = i + 1;
    });
    if (first >= 0) chosen.push({ from: first, to: last, ms: (window.toUs - window.fromUs) / 1000, label: window.label });
  }
  for (const stretch of chosen) {
    const self = new Map<string, number>();
    const inclusive = new Map<string, number>();
    for (let i = stretch.from; i < stretch.to; i++) {
      const ms = (profile.timeDeltas[i + 1] ?? 0) / 1000;
      const id = profile.samples[i]!;
      self.set(name(id), (self.get(name(id)) ?? 0) + ms);
      const seen = new Set<string>();
      for (let x: number | undefined = id; x !== undefined; x = parent.get(x)) {
        if (seen.has(name(x))) continue;
        seen.add(name(x));
        inclusive.set(name(x), (inclusive.get(name(x)) ?? 0) + ms);
      }
    }
    const top = (m: Map<string, number>, n: number) => [...m].sort((a, b) => b[1] - a[1]).slice(0, n).map(([k, v]) => `    ${v.toFixed(1).padStart(6)} ms ${k}`);
    out.push(`  ${stretch.label ?? "busy"} for ${stretch.ms.toFixed(1)} ms; self time:`, ...top(self, 10), "  inclusive time:", ...top(inclusive, 24));
  }
  return out.join("\n");
}

/** The --trace-gc-nvp lines (stdout) in a wall-clock window, summed: copies and pauses of each kind of collection. */
function survivorsOf(stdout: string, stderr: string, fromMs: number, toMs: number): string {
  const clock = /^CLOCK ([\d.]+)$/m.exec(stderr);
  if (!clock) return "  (no clock)";
  const t0 = Number(clock[1]);
  const kinds = new Map<string, { count: number; copiedMB: number; pauseMs: number; pauses: number[] }>();
  for (const line of stdout.split("\n")) {
    const m = /\]\s+(\d+) ms: pause=([\d.]+) .*?\bgc=(\w+) /.exec(line);
    if (!m) continue;
    const at = t0 + Number(m[1]);
    if (at < fromMs || at > toMs) continue;
    const field = (name: string) => Number(new RegExp(`\\b${name}=([\\d.]+)`).exec(line)?.[1] ?? 0);
    const kind = kinds.get(m[3]!) ?? { count: 0, copiedMB: 0, pauseMs: 0, pauses: [] };
    kind.count++;
    kind.copiedMB += (field("new_space_survived") + field("promoted")) / 1e6;
    kind.pauseMs += Number(m[2]);
    kind.pauses.push(Number(m[2]));
    kinds.set(m[3]!, kind);
  }
  const names: Record<string, string> = { s: "scavenges", mc: "mark-compacts", mmc: "minor mark-compacts" };
  return [...kinds]
    .map(
      ([kind, k]) =>
        `  ${names[kind] ?? kind}: ${k.count}, ${k.copiedMB.toFixed(1)} MB survived or promoted, pauses ${k.pauseMs.toFixed(0)} ms in all (${(k.pauseMs / Math.max(k.copiedMB, 0.001)).toFixed(1)} ms per MB), ${k.pauses.filter((p) => p > 10).length} over 10 ms: ${k.pauses.map((p) => p.toFixed(0)).join(" ")}`,
    )
    .join("\n");
}

async function storm(listener: "main" | "native", main: string | undefined, renice: boolean, keysFile: string, profile: boolean, traceGc = false, serverFlags: string[] = [], survivors = false, liveHeap = false): Promise<StormStalls> {
  const cores = coreLayout();
  const liveHeapDir = liveHeap ? mkdtempSync(path.join(os.tmpdir(), "keypool-storm-live-heap-")) : undefined;
  const profileDir = profile ? mkdtempSync(path.join(os.tmpdir(), "keypool-storm-profile-")) : undefined;
  const server = await startKeypool({
    env: { KEYPOOL_KEYS_FILE: keysFile, KEYPOOL_STATE: "memory", KEYPOOL_MAX_WATCHERS: "1010", ...(liveHeapDir ? { LIVE_HEAP_DIR: liveHeapDir } : {}) },
    cpus: cores.server,
    nativePort: listener === "native",
    nodeArgs: [
      ...(liveHeapDir ? ["--require", path.join(ROOT, "bench", "lib", "live-heap-sampler.cjs")] : []),
      "--require",
      LOOP_STALLS,
      ...(profileDir ? ["--cpu-prof", `--cpu-prof-dir=${profileDir}`, "--cpu-prof-interval=200"] : []),
      ...(traceGc ? ["--trace-gc"] : []),
      ...(survivors ? ["--trace-gc-nvp"] : []),
      ...serverFlags,
    ],
    main,
  });
  if (renice) {
    for (const task of readdirSync(`/proc/${server.pid}/task`)) execFileSync("renice", ["-n", "-15", "-p", task]);
  }
  const port = listener === "native" ? server.grpcPort! : server.port;
  try {
    await sleep(1000);
    const profiles: SamplingProfile[] = [];
    const takeLiveHeap = async () => {
      process.kill(server.pid, "SIGUSR2");
      const file = path.join(liveHeapDir!, `live-${profiles.length}.json`);
      for (let waited = 0; !existsSync(file) || !server.proc.stderr().includes(`LIVE-HEAP ${file}`); waited += 50) {
        if (waited > 30_000) throw new Error("the server wrote no heap profile");
        await sleep(50);
      }
      profiles.push(JSON.parse(readFileSync(file, "utf8")) as SamplingProfile);
    };
    if (liveHeapDir) await takeLiveHeap();
    const config = { port, watchers: 1000, connections: 10, mode: "read", batch: true, method: "watch" };
    const cpu0 = cpuMs(server.pid);
    const beginUs = Number(process.hrtime.bigint() / 1000n);
    // Stalls are reported in wall-clock ms, the profile in CLOCK_MONOTONIC µs.
    const wallToMonotonicUs = Date.now() * 1000 - beginUs;
    const watchers = start(process.execPath, ["--import", "tsx", path.join(ROOT, "bench", "watch-audience.ts"), JSON.stringify(config)], cores.load, { cwd: ROOT, niceness: 19 });
    try {
      let synced: RegExpExecArray | null = null;
      while (!(synced = /SYNCED (\d+)/.exec(watchers.stdout()))) {
        if (watchers.child.exitCode !== null) throw new Error(`watch audience exited:\n${watchers.stderr().slice(-2000)}`);
        await sleep(20);
      }
      const end = Date.now();
      const endUs = Number(process.hrtime.bigint() / 1000n);
      const serverCpuMs = cpuMs(server.pid) - cpu0;
      const syncedMs = Number(synced[1]);
      const begin = end - syncedMs;
      const stallLines = stallsOf(server.proc.stderr()).filter(({ at }) => at >= begin - 50 && at <= end);
      const stalls = stallLines.map(({ ms }) => ms);
      const longestStalls = [...stallLines]
        .sort((a, b) => b.ms - a.ms)
        .slice(0, 2)
        .map(({ at, ms }) => ({ fromUs: at * 1000 - wallToMonotonicUs, toUs: (at + ms) * 1000 - wallToMonotonicUs, label: "stall" }));
      let timeline: string | undefined;
      if (traceGc) {
        const events = [
          ...stallLines.map(({ at, ms }) => ({ at, text: `stall ${ms.toFixed(0)} ms` })),
          ...collections(server.proc.stdout(), server.proc.stderr(), begin - 50, end)
            .filter((c) => c.pauseMs >= 5)
            .map((c) => ({ at: c.at, text: `  gc ${c.pauseMs.toFixed(1)} ms: ${c.text}` })),
        ].sort((a, b) => a.at - b.at);
        timeline = events.map((e) => `  +${String(Math.round(e.at - begin)).padStart(5)} ms ${e.text}`).join("\n");
      }
      const survived = survivors ? survivorsOf(server.proc.stdout(), server.proc.stderr(), begin - 50, end) : undefined;
      if (liveHeapDir) {
        // Once the last snapshots have left: what the open streams keep, not what is in flight.
        await sleep(500);
        await takeLiveHeap();
      }
      await watchers.kill();
      await server.stop();
      let described: string | undefined;
      if (profileDir) {
        const file = readdirSync(profileDir).find((f) => f.endsWith(".cpuprofile"));
        described = file ? busyStretches(JSON.parse(readFileSync(path.join(profileDir, file), "utf8")) as CpuProfile, beginUs, endUs, 3, longestStalls) : "  (no profile written)";
      }
      return { syncedMs, serverCpuMs, stalls, profile: described, timeline, survivors: survived, liveHeap: profiles.length === 2 ? liveHeapGrowth(profiles[0]!, profiles[1]!, 1000) : undefined };
    } finally {
      await watchers.kill();
    }
  } finally {
    await server.stop();
    if (profileDir) rmSync(profileDir, { recursive: true, force: true });
    if (liveHeapDir) rmSync(liveHeapDir, { recursive: true, force: true });
  }
}

async function main(): Promise<void> {
  const value = (name: string) => process.argv.find((a) => a.startsWith(`--${name}=`))?.slice(name.length + 3);
  const listener = (value("port") ?? "main") as "main" | "native";
  if (listener !== "main" && listener !== "native") throw new Error("--port must be main or native");
  const baseline = value("baseline");
  const rounds = Number(value("rounds") ?? "2");
  const renice = process.argv.includes("--renice");
  const profile = process.argv.includes("--profile");
  const traceGc = process.argv.includes("--trace-gc");
  const survivors = process.argv.includes("--survivors");
  const liveHeap = process.argv.includes("--live-heap");
  if (traceGc && survivors) throw new Error("--trace-gc and --survivors use two formats of V8's trace: one at a time");
  // A diagnostic: node or V8 flags for the servers of both builds (e.g. --server-flag=--max-semi-space-size=1).
  const serverFlags = process.argv.filter((a) => a.startsWith("--server-flag=")).map((a) => a.slice("--server-flag=".length));
  const keysFile = path.join(os.tmpdir(), "keypool-storm-stalls-keys.json");
  writeKeysFile(keysFile, 1000);
  const builds: { label: string; main?: string }[] = [{ label: "this build" }];
  if (baseline) builds.push({ label: "baseline", main: path.resolve(baseline, "dist", "src", "main.js") });
  for (let round = 0; round < rounds; round++) {
    for (const build of round % 2 === 0 ? builds : [...builds].reverse()) {
      const r = await storm(listener, build.main, renice, keysFile, profile, traceGc, serverFlags, survivors, liveHeap);
      const sorted = [...r.stalls].sort((a, b) => b - a);
      console.log(
        `${listener} port, ${build.label}: synced in ${r.syncedMs} ms, server CPU ${r.serverCpuMs} ms; ${r.stalls.length} stalls over 16 ms, longest ${sorted.slice(0, 5).map((ms) => ms.toFixed(0)).join(", ")} ms; in order: ${r.stalls.map((ms) => ms.toFixed(0)).join(" ")}`,
      );
      if (r.profile) console.log(r.profile);
      if (r.timeline) console.log(r.timeline);
      if (r.survivors) console.log(r.survivors);
      if (r.liveHeap) console.log(r.liveHeap);
    }
  }
}

main().catch((error) => {
  console.error(error);
  process.exit(1);
});
