/**
 * What 1,000 WatchKeys watchers that never read are made of in the server's heap, as in
 * bench/watch-memory.bench.ts (100,000 keys under Lease load): one fresh server per row, the
 * streams opened, the Lease load run, then a heap snapshot taken (`--heapsnapshot-signal`, which
 * collects first: what it shows is live) and summed by kind of object. Also per row: the
 * server's CPU per Lease and the Leases completed, so that a row that saturated the server shows.
 *
 *   npm run build && flock /tmp/keypool-bench.lock npx tsx bench/watch-memory-heap.ts \
 *     [--port=main|native|both] [--kinds=watch,health,none] [--keys=100000] [--seconds=30] [--main=<built tree>] [--cpu-prof]
 *
 * Prints, per row, RSS, heap used and CPU per Lease, then the kinds of objects whose total size
 * differs most between consecutive rows (and between the ports, for the same kind of stream).
 * The summaries stay in bench/results/ as JSON. `--cpu-prof` also profiles the server and prints
 * its self time during the load (by package, by function; bench/profile-server.ts).
 */
import { mkdirSync, mkdtempSync, openSync, readFileSync, readdirSync, readSync, rmSync, statSync, closeSync, writeFileSync, fstatSync } from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { coreLayout, cpuMs, sleep, type CoreLayout } from "./lib/children";
import { h2load } from "./lib/h2load";
import { LEASE, leaseRequestBytes, poolTotals } from "./lib/keypool-rpc";
import { ROOT, startKeypool } from "./lib/keypool-server";
import { writeKeysFile } from "./lib/keys-file";
import { profileWindow, selfTimeByPackage, topFunctions, type Profile } from "./profile-server";
import { audience, waitFor, type Listener } from "./watch-memory.bench";

type Kind = "none" | "watch" | "health";

export interface HeapRow {
  label: string;
  rssMiB: number;
  leases: number;
  cpuMsPerLease: number;
  /** Total self size in the snapshot, MiB. */
  heapMiB: number;
  /** Self size and count by kind of object ("type:name"). */
  groups: Record<string, { bytes: number; count: number }>;
  /** With --cpu-prof: the server's self time during the load, by package and by function. */
  profile?: string[];
}

/** Sums a .heapsnapshot's nodes by type and name without holding it as one string. */
export function summarizeHeapSnapshot(file: string): { totalBytes: number; groups: Record<string, { bytes: number; count: number }> } {
  const buffer = readWhole(file);
  const nodesAt = buffer.indexOf('"nodes":[');
  const edgesAt = buffer.indexOf('"edges":[', nodesAt);
  const stringsAt = buffer.lastIndexOf('"strings":[');
  const meta = JSON.parse(buffer.subarray(buffer.indexOf("{", 1), buffer.lastIndexOf("}", nodesAt) + 1).toString("utf8")) as {
    meta: { node_fields: string[]; node_types: [string[]] };
  };
  const fields = meta.meta.node_fields;
  const types = meta.meta.node_types[0];
  const strings = JSON.parse(buffer.subarray(stringsAt + '"strings":'.length, buffer.lastIndexOf("]") + 1).toString("utf8")) as string[];
  const groups: Record<string, { bytes: number; count: number }> = {};
  let totalBytes = 0;
  const row: number[] = [];
  let value = 0;
  let inNumber = false;
  const end = edgesAt;
  const typeAt = fields.indexOf("type");
  const nameAt = fields.indexOf("name");
  const sizeAt = fields.indexOf("self_size");
  for (let i = nodesAt + '"nodes":['.length; i < end; i++) {
    const c = buffer[i]!;
    if (c >= 48 && c <= 57) {
      value = value * 10 + (c - 48);
      inNumber = true;
      continue;
    }
    if (!inNumber) continue;
    row.push(value);
    value = 0;
    inNumber = false;
    if (row.length === fields.length) {
      const type = types[row[typeAt]!]!;
      const size = row[sizeAt]!;
      totalBytes += size;
      const name = type === "string" || type === "concatenated string" || type === "sliced string" || type === "number" || type === "code" || type === "object shape"
        ? ""
        : strings[row[nameAt]!]!.slice(0, 80);
      // Backing stores by size (a power of two): which buffers they are shows in their sizes.
      const key = name === "system / JSArrayBufferData" ? `${type}:${name} <= ${2 ** Math.ceil(Math.log2(Math.max(1, size)))} B` : `${type}:${name}`;
      const group = (groups[key] ??= { bytes: 0, count: 0 });
      group.bytes += size;
      group.count++;
      row.length = 0;
    }
  }
  return { totalBytes, groups };
}

function readWhole(file: string): Buffer {
  const fd = openSync(file, "r");
  try {
    const size = fstatSync(fd).size;
    const buffer = Buffer.allocUnsafe(size);
    let at = 0;
    while (at < size) at += readSync(fd, buffer, at, Math.min(1 << 26, size - at), at);
    return buffer;
  } finally {
    closeSync(fd);
  }
}

async function snapshotOf(pid: number, dir: string): Promise<string> {
  process.kill(pid, "SIGUSR2");
  const until = Date.now() + 300_000;
  for (;;) {
    await sleep(1000);
    const files = readdirSync(dir).filter((f) => f.endsWith(".heapsnapshot"));
    if (files.length > 0) {
      const file = path.join(dir, files[0]!);
      const size = statSync(file).size;
      await sleep(2000);
      // Written in one go at the end of a collection: complete once it stops growing and closes with "]}".
      if (statSync(file).size === size && size > 0 && readTail(file).trimEnd().endsWith("}")) return file;
    }
    if (Date.now() > until) throw new Error("no heap snapshot within 300 s");
  }
}

function readTail(file: string): string {
  const fd = openSync(file, "r");
  try {
    const size = fstatSync(fd).size;
    const tail = Buffer.alloc(Math.min(64, size));
    readSync(fd, tail, 0, tail.length, size - tail.length);
    return tail.toString("utf8");
  } finally {
    closeSync(fd);
  }
}

async function measureRow(kind: Kind, listener: Listener, opts: { keysFile: string; watchers: number; seconds: number; leaseRate: number; main?: string; cpuProfile: boolean }, cores: CoreLayout): Promise<HeapRow> {
  const dir = mkdtempSync(path.join(os.tmpdir(), "keypool-heap-"));
  const server = await startKeypool({
    main: opts.main,
    env: { KEYPOOL_KEYS_FILE: opts.keysFile, KEYPOOL_STATE: "memory", KEYPOOL_MAX_WATCHERS: String(opts.watchers + 10) },
    cpus: cores.server,
    deadlineMs: 180_000,
    nativePort: listener === "native",
    nodeArgs: ["--heapsnapshot-signal=SIGUSR2", `--diagnostic-dir=${dir}`, ...(opts.cpuProfile ? ["--cpu-prof", `--cpu-prof-dir=${dir}`] : [])],
  });
  let loadUs: [number, number] = [0, 0];
  let row: HeapRow | undefined;
  const port = listener === "native" ? server.grpcPort! : server.port;
  const streams = kind === "none" ? undefined : audience(port, opts.watchers, "idle", cores, kind);
  try {
    if (streams) await waitFor(streams, /OPEN (\d+)/, 120_000);
    const before = await poolTotals(server.port);
    const cpuBefore = cpuMs(server.pid);
    const loadFrom = Number(process.hrtime.bigint() / 1000n);
    let rssMiB = 0;
    const load = h2load(port, LEASE, leaseRequestBytes(), { requests: 0, connections: 2, streamsPerConnection: 16, durationS: opts.seconds, rpsPerConnection: Math.round(opts.leaseRate / 2) }, cores.load);
    let done = false;
    void load.finally(() => (done = true));
    while (!done) {
      rssMiB = Math.max(rssMiB, server.rssMiB());
      await sleep(1000);
    }
    await load;
    const cpu = cpuMs(server.pid) - cpuBefore;
    loadUs = [loadFrom, Number(process.hrtime.bigint() / 1000n)];
    const after = await poolTotals(server.port);
    const leases = after.leases - before.leases;
    const file = await snapshotOf(server.pid, dir);
    const summary = summarizeHeapSnapshot(file);
    row = {
      label: `${listener} port, ${kind === "none" ? "no streams" : `${opts.watchers} ${kind === "watch" ? "WatchKeys" : "Health/Watch"} streams`}`,
      rssMiB,
      leases,
      cpuMsPerLease: cpu / Math.max(1, leases),
      heapMiB: summary.totalBytes / 2 ** 20,
      groups: summary.groups,
    };
  } finally {
    await streams?.kill();
    await server.stop();
    const profileFile = readdirSync(dir).find((f) => f.endsWith(".cpuprofile"));
    if (row && profileFile) {
      const load = profileWindow(JSON.parse(readFileSync(path.join(dir, profileFile), "utf8")) as Profile, loadUs[0], loadUs[1]);
      const line = (t: { name: string; ms: number; share: number }) => `    ${t.ms.toFixed(0).padStart(7)} ms ${(t.share * 100).toFixed(1).padStart(5)}%  ${t.name}`;
      row.profile = ["  self time during the load, by package:", ...selfTimeByPackage(load, 12).map(line), "  by function:", ...topFunctions(load, 25).map(line)];
    }
    rmSync(dir, { recursive: true, force: true });
  }
  return row!;
}

/** The kinds of objects whose total size differs most from `a` to `b`. */
export function largestDifferences(a: HeapRow, b: HeapRow, limit: number): string[] {
  const keys = new Set([...Object.keys(a.groups), ...Object.keys(b.groups)]);
  const diffs = [...keys].map((key) => {
    const x = a.groups[key] ?? { bytes: 0, count: 0 };
    const y = b.groups[key] ?? { bytes: 0, count: 0 };
    return { key, bytes: y.bytes - x.bytes, count: y.count - x.count };
  });
  diffs.sort((p, q) => Math.abs(q.bytes) - Math.abs(p.bytes));
  return diffs.slice(0, limit).map((d) => `    ${(d.bytes / 2 ** 20).toFixed(2).padStart(8)} MiB  ${String(d.count).padStart(9)} objects  ${d.key}`);
}

async function main(): Promise<void> {
  const value = (name: string) => process.argv.find((a) => a.startsWith(`--${name}=`))?.slice(name.length + 3);
  const portArg = value("port") ?? "both";
  const listeners: Listener[] = portArg === "both" ? ["main", "native"] : [portArg as Listener];
  const kinds = (value("kinds") ?? "watch").split(",") as Kind[];
  const keys = Number(value("keys") ?? 100_000);
  const seconds = Number(value("seconds") ?? 30);
  const mainArg = value("main");
  const cpuProfile = process.argv.includes("--cpu-prof");
  const cores = coreLayout();
  const dir = mkdtempSync(path.join(os.tmpdir(), "keypool-heap-keys-"));
  const keysFile = path.join(dir, "keys.json");
  writeKeysFile(keysFile, keys);
  const rows: HeapRow[] = [];
  try {
    for (const listener of listeners) {
      for (const kind of kinds) {
        const row = await measureRow(kind, listener, { keysFile, watchers: 1000, seconds, leaseRate: 2000, main: mainArg ? path.resolve(mainArg, "dist", "src", "main.js") : undefined, cpuProfile }, cores);
        console.log(`${row.label}: RSS ${row.rssMiB.toFixed(0)} MiB, live heap ${row.heapMiB.toFixed(1)} MiB, ${row.leases} leases, ${row.cpuMsPerLease.toFixed(3)} ms CPU per lease`);
        if (row.profile) console.log(row.profile.join("\n"));
        if (rows.length > 0) {
          const previous = rows[rows.length - 1]!;
          console.log(`  from "${previous.label}" to "${row.label}":`);
          for (const line of largestDifferences(previous, row, 25)) console.log(line);
        }
        rows.push(row);
      }
    }
    if (listeners.length === 2) {
      for (const kind of kinds) {
        const [a, b] = rows.filter((r) => r.label.includes(kind === "none" ? "no streams" : kind === "watch" ? "WatchKeys" : "Health/Watch"));
        if (!a || !b) continue;
        console.log(`  from "${b.label}" to "${a.label}":`);
        for (const line of largestDifferences(b, a, 30)) console.log(line);
      }
    }
    const out = path.join(ROOT, "bench", "results");
    mkdirSync(out, { recursive: true });
    const file = path.join(out, `watch-memory-heap-${new Date().toISOString().replace(/[:.]/g, "-")}.json`);
    writeFileSync(file, JSON.stringify(rows));
    console.log(`summaries: ${file}`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

if (require.main === module) {
  main().catch((error) => {
    console.error(error);
    process.exit(1);
  });
}
