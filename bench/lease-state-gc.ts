/**
 * What the change feed's followers leave for the collector, in process and without a transport:
 * a KeyPool of 100,000 keys (by default) with the state file's writer (GroupCommitWriter over the
 * worker thread, a real SQLite file, lazy commits each second) is leased in a loop, with 300
 * short-lived objects per Lease to stand in for the transport's garbage, yielding to the event loop
 * every 500 Leases so that commits run. Each build (this one, and `--baseline` dirs holding a built
 * tree) runs as its own process with `--trace-gc-nvp`; the scavenges of the loop are summed per
 * isolate (the main thread's, and the writer thread's).
 *
 *   npm run build && npx tsx bench/lease-state-gc.ts [--keys=100000] [--leases=150000] [--rounds=2] [--baseline=<dir>[,<dir>...]]
 */
import { spawnSync } from "node:child_process";
import { benchArg, buildsToCompare } from "./lib/ab-args";

/** The loop, run by `node --trace-gc-nvp -e` against one build's dist/. */
const LOOP = `
const path = require("path"), fs = require("fs"), os = require("os");
const [root, keys, leases] = [process.env.ROOT, Number(process.env.KEYS), Number(process.env.LEASES)];
const d = (p) => require(path.join(root, "dist", "src", p));
const { KeyPool } = d("domain/key-pool.js");
const { systemClock: clock } = d("domain/clock.js");
const { WorkerCommitter } = d("storage/committers.js");
const { SqliteStateStore } = d("storage/sqlite-store.js");
const { GroupCommitWriter } = d("storage/group-commit.js");
const dir = fs.mkdtempSync(path.join(os.tmpdir(), "keypool-state-gc-"));
const file = path.join(dir, "state.db");
SqliteStateStore.open(file).close();
const pool = new KeyPool({ clock, reuseDelayMs: 0 });
pool.addKeys(Array.from({ length: keys }, (_, i) => ({ provider: "openai", key: "sk-state-gc-" + String(i).padStart(12, "0") })));
const writer = new GroupCommitWriter(new WorkerCommitter(file), pool, { clock, lazyMs: 1000 });
(async () => {
  await writer.flush();
  console.log("LOOP START");
  const t0 = process.hrtime.bigint();
  let sink = 0;
  for (let i = 0; i < leases; i++) {
    const lease = pool.lease({ model: "gpt-4" });
    const garbage = [];
    for (let j = 0; j < 300; j++) garbage.push({ j });
    sink += garbage.length + lease.key.length;
    if (i % 500 === 499) await new Promise((resolve) => setImmediate(resolve));
  }
  const us = Number(process.hrtime.bigint() - t0) / 1e3 / leases;
  console.log("LOOP END " + us.toFixed(1) + " " + writer.stats.keysWritten + " " + sink);
  writer.close();
  fs.rmSync(dir, { recursive: true, force: true });
})();
`;

interface IsolateGc {
  scavenges: number;
  survivedBytes: number;
  promotedBytes: number;
  pauseMs: number;
}

function run(root: string, keys: number, leases: number): { usPerLease: number; rows: number; main: IsolateGc; writer: IsolateGc } {
  const out = spawnSync(process.execPath, ["--trace-gc-nvp", "-e", LOOP], {
    env: { ...process.env, ROOT: root, KEYS: String(keys), LEASES: String(leases) },
    encoding: "utf8",
    maxBuffer: 1 << 30,
  });
  if (out.status !== 0) throw new Error(`the loop failed for ${root}:\n${out.stderr.slice(-2000)}`);
  const byIsolate = new Map<string, IsolateGc>();
  let on = false;
  let end = "";
  let mainIsolate = "";
  for (const line of out.stdout.split("\n")) {
    if (line.startsWith("LOOP START")) on = true;
    else if (line.startsWith("LOOP END")) {
      on = false;
      end = line;
    }
    const m = /^\[\d+:(0x[0-9a-f]+)\].* gc=s /.exec(line);
    if (!on || !m) continue;
    const field = (name: string) => Number(new RegExp(`\\b${name}=([\\d.]+)`).exec(line)?.[1] ?? 0);
    const gc = byIsolate.get(m[1]!) ?? { scavenges: 0, survivedBytes: 0, promotedBytes: 0, pauseMs: 0 };
    gc.scavenges++;
    gc.survivedBytes += field("new_space_survived");
    gc.promotedBytes += field("promoted");
    gc.pauseMs += field("pause");
    byIsolate.set(m[1]!, gc);
  }
  // The main thread's isolate is the one that scavenges most (it makes the Leases' garbage).
  for (const [id, gc] of byIsolate) if (!mainIsolate || gc.scavenges > byIsolate.get(mainIsolate)!.scavenges) mainIsolate = id;
  const none = { scavenges: 0, survivedBytes: 0, promotedBytes: 0, pauseMs: 0 };
  const writer = [...byIsolate].find(([id]) => id !== mainIsolate)?.[1] ?? none;
  const [, , us, rows] = end.split(" ");
  return { usPerLease: Number(us), rows: Number(rows), main: byIsolate.get(mainIsolate) ?? none, writer };
}

function main(): void {
  const keys = Number(benchArg("keys", "100000"));
  const leases = Number(benchArg("leases", "150000"));
  const rounds = Number(benchArg("rounds", "2"));
  const builds = buildsToCompare();
  const mb = (bytes: number) => `${(bytes / 1e6).toFixed(1)} MB`;
  console.log(`${keys} keys, ${leases} Leases per run, state file on a worker thread; scavenges of the loop, per isolate:`);
  console.log("| run | build | µs per Lease | rows written | main thread: survived / promoted / scavenge pause | writer thread: survived / promoted / scavenge pause |");
  console.log("|---|---|---|---|---|---|");
  for (let round = 1; round <= rounds; round++) {
    for (const build of round % 2 === 1 ? builds : [...builds].reverse()) {
      const r = run(build.root, keys, leases);
      console.log(
        `| ${round} | ${build.label} | ${r.usPerLease.toFixed(1)} | ${r.rows} | ${mb(r.main.survivedBytes)} / ${mb(r.main.promotedBytes)} / ${r.main.pauseMs.toFixed(0)} ms | ${mb(r.writer.survivedBytes)} / ${mb(r.writer.promotedBytes)} / ${r.writer.pauseMs.toFixed(0)} ms |`,
      );
    }
  }
}

main();
