/**
 * The state writer's share of the main thread per row of a lazy write, step by step: reading the
 * key's status from the pool (`getKey`, which makes a status object), its secret, the row's JSON
 * (`toKeyRow`), and posting the rows to a thread in parts as WorkerCommitter does; beside them,
 * the soft row that a key with its row gets when only leases changed it (`softStateOf`, packed
 * into a typed array, posted). Each key is leased once first, as in a warmed pool; one row per
 * Lease is what a Lease of a distinct key costs the main thread at the next lazy write.
 *
 *   npx tsx bench/state-row-main-thread.ts [--keys=100000] [--rows=12000] [--repeats=5]
 *
 * Not a test: figures depend on the machine. BENCHMARKS.md §5 records them.
 */
import { Worker } from "node:worker_threads";
import { systemClock } from "../src/domain/clock";
import { KeyPool } from "../src/domain/key-pool";
import { SoftRowsBuilder, toKeyRow, type KeyRow } from "../src/storage/key-rows";
import { benchArg } from "./lib/ab-args";
import { benchKey } from "./lib/keys-file";
import { median } from "./lib/stats";

/** As WorkerCommitter posts a batch. */
const ROWS_PER_MESSAGE = 256;
const SOFT_ROWS_PER_MESSAGE = 1024;

function main(): void {
  const keys = Number(benchArg("keys", "100000"));
  const rowCount = Number(benchArg("rows", "12000"));
  const repeats = Number(benchArg("repeats", "5"));
  const pool = new KeyPool({ clock: systemClock, reuseDelayMs: 0 });
  const specs = Array.from({ length: keys }, (_, i) => ({ provider: "openai" as const, key: benchKey(i) }));
  pool.addKeys(specs);
  const hashes = pool.listKeys().map((s) => s.keyHash).slice(0, rowCount);
  for (let i = 0; i < hashes.length; i++) pool.lease({ model: "gpt-4o-mini" });
  const sink = new Worker("require('node:worker_threads').parentPort.on('message', () => {})", { eval: true });
  let kept = 0;
  const steps: Array<[string, () => void]> = [
    [
      "status (getKey)",
      () => {
        for (const h of hashes) kept += pool.getKey(h)!.leaseCount;
      },
    ],
    [
      "status and secret",
      () => {
        for (const h of hashes) kept += pool.getKey(h)!.leaseCount + pool.secretOf(h)!.length;
      },
    ],
    [
      "row (status, secret, JSON)",
      () => {
        for (const h of hashes) kept += row(pool, h).length;
      },
    ],
    [
      "row and post",
      () => {
        let rows: KeyRow[] = [];
        for (const h of hashes) {
          rows.push(row(pool, h));
          if (rows.length === ROWS_PER_MESSAGE) {
            sink.postMessage(rows);
            rows = [];
          }
        }
        sink.postMessage(rows);
      },
    ],
    [
      "soft state (softStateOf)",
      () => {
        for (const h of hashes) kept += pool.softStateOf(h)!.leaseCount;
      },
    ],
    [
      "soft row, packed and posted",
      () => {
        const soft = new SoftRowsBuilder(SOFT_ROWS_PER_MESSAGE);
        for (const h of hashes) {
          soft.add({ kind: "soft", keyHash: h, soft: pool.softStateOf(h)! });
          if (soft.full) sink.postMessage(soft.take());
        }
        sink.postMessage(soft.take());
      },
    ],
  ];
  console.log(`${keys} keys, ${hashes.length} rows per pass, ${repeats} passes per step (the first two dropped as warm-up), µs of main-thread time per row:`);
  console.log("| step | µs per row (passes) |\n|---|---|");
  for (const [name, run] of steps) {
    const perRow: number[] = [];
    for (let r = 0; r < repeats + 2; r++) {
      const start = process.hrtime.bigint();
      run();
      const us = Number(process.hrtime.bigint() - start) / 1000 / hashes.length;
      if (r >= 2) perRow.push(us);
    }
    console.log(`| ${name} | ${median(perRow).toFixed(2)} (${perRow.map((v) => v.toFixed(2)).join(", ")}) |`);
  }
  if (kept < 0) console.log(kept);
  void sink.terminate();
}

function row(pool: KeyPool, keyHash: string): KeyRow {
  return toKeyRow({ kind: "upsert", status: pool.getKey(keyHash)!, secret: pool.secretOf(keyHash), removedAt: 0 }, Date.now());
}

main();
