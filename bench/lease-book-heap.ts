/**
 * What an open lease keeps while it waits for its TTL, in process: each build's LeaseBook (this
 * one, and `--baseline` dirs holding a built tree) opens `--leases` leases that never end, in a
 * process of its own run with `--expose-gc`; after a full collection, the heap bytes and the
 * bytes outside the heap (ArrayBuffers) that the open leases added, per lease.
 *
 *   npm run build && npx tsx bench/lease-book-heap.ts [--leases=200000] [--baseline=<dir>[,<dir>...]]
 */
import { spawnSync } from "node:child_process";
import { benchArg, buildsToCompare } from "./lib/ab-args";

/** Run by `node --expose-gc -e` against one build's dist/. */
const OPEN = `
const path = require("path");
const { LeaseBook } = require(path.join(process.env.ROOT, "dist", "src", "domain", "leases.js"));
const leases = Number(process.env.LEASES);
const clock = { now: () => 0, setTimer: () => ({ cancel() {} }) };
const owners = Array.from({ length: 64 }, (_, i) => ({ name: i }));
const measure = () => { gc(); gc(); const m = process.memoryUsage(); return { heap: m.heapUsed, outside: m.arrayBuffers }; };
const book = new LeaseBook(clock, () => {});
const before = measure();
for (let i = 0; i < leases; i++) book.open(owners[i % 64], 60000 + i);
const after = measure();
if (book.size !== leases) throw new Error("the book holds " + book.size + " leases, not " + leases);
console.log(JSON.stringify({ heap: (after.heap - before.heap) / leases, outside: (after.outside - before.outside) / leases }));
`;

function main(): void {
  const leases = Number(benchArg("leases", "200000"));
  const builds = buildsToCompare();
  const rows = ["| build | heap per open lease | outside the heap per open lease |", "|---|---|---|"];
  for (const build of builds) {
    const run = spawnSync(process.execPath, ["--expose-gc", "-e", OPEN], { env: { ...process.env, ROOT: build.root, LEASES: String(leases) }, encoding: "utf8" });
    if (run.status !== 0) throw new Error(`${build.label}: ${run.stderr}`);
    const { heap, outside } = JSON.parse(run.stdout) as { heap: number; outside: number };
    rows.push(`| ${build.label} | ${heap.toFixed(0)} B | ${outside.toFixed(0)} B |`);
  }
  process.stdout.write(`${leases} open leases that never end, one build per process, after a full collection:\n${rows.join("\n")}\n`);
}

main();
