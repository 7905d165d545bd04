/**
 * The state writer's cost per row: a key's first row (an insert) against a row that exists (the
 * same upsert, which then updates) and against a soft row beside an existing row (what a lease
 * of a key with its row writes: key_soft), written the way the commit worker writes them (the
 * same schema, pragmas and statements, one transaction per lazy batch), on this thread, with
 * better-sqlite3 directly. Prints CPU and wall time per row for each variant.
 *
 *   npx tsx bench/state-first-rows.ts [--keys=100000] [--changes=48000] [--batch=6000] [--variants=plain,sorted]
 *
 * The rows are timed from their arrival on the writer thread (structured clone's copy, as posted
 * by WorkerCommitter) to their commit. `--order=hash` (default): keys change in key-hash order,
 * as a pool leases keys never leased (equal priorities break by hash); `--order=random`.
 *
 * Variants (joined with `+`): `plain`, `sorted` (each batch sorted by key hash), `cache=<MiB>` (the
 * writer connection's page cache), `nockpt` (no automatic checkpoint), `ckpt=<pages>` (automatic
 * checkpoint at that WAL size), `page=<bytes>` (the page size of a new file).
 */
import { mkdtempSync, rmSync, statSync } from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import * as v8 from "node:v8";
import Database from "better-sqlite3";
import { freshKeyStatus } from "../src/domain/key-entry";
import { hashKey } from "../src/domain/key-hash";
import { SoftRowsBuilder, toKeyRow, type KeyRow, type SoftRows } from "../src/storage/key-rows";
import { SqliteStateStore } from "../src/storage/sqlite-store";
import { prepareRowWriter, useWriterPragmas } from "../src/storage/sqlite-connection";
import { benchArg } from "./lib/ab-args";
import { benchKey } from "./lib/keys-file";
import { median } from "./lib/stats";

const keys = Number(benchArg("keys", "100000"));
const changes = Number(benchArg("changes", "48000"));
const batchSize = Number(benchArg("batch", "6000"));
const variants = benchArg("variants", "plain,sorted").split(",");
/** `hash`: keys change in key-hash order, as a pool leases keys never leased (ties break by hash). */
const changeOrder = benchArg("order", "hash");
/** As WorkerCommitter posts a batch (committers.ts). */
const ROWS_PER_MESSAGE = 256;
const SOFT_ROWS_PER_MESSAGE = 1024;

function rowOf(i: number, now: number, leased: boolean): KeyRow {
  const secret = benchKey(i);
  const status = freshKeyStatus(hashKey("openai", secret, ""), "openai", ["turbo", "gpt4"]);
  if (leased) {
    status.lastUsed = now;
    status.holdUntil = now + 1000;
    status.inFlight = 1;
    status.leaseCount = 1;
  }
  return toKeyRow({ kind: "upsert", status, secret, removedAt: 0 }, now);
}

/** A deterministic shuffle: the order in which keys first change. */
function order(n: number): number[] {
  const a = Array.from({ length: n }, (_, i) => i);
  let seed = 12345;
  for (let i = n - 1; i > 0; i--) {
    seed = (seed * 1103515245 + 12345) & 0x7fffffff;
    const j = seed % (i + 1);
    [a[i], a[j]] = [a[j]!, a[i]!];
  }
  return a;
}

function writer(file: string, variant: string): Database.Database {
  const db = new Database(file, { fileMustExist: true });
  useWriterPragmas(db);
  const cache = /cache=(\d+)/.exec(variant);
  if (cache) db.pragma(`cache_size = -${Number(cache[1]) * 1024}`);
  if (variant.includes("nockpt")) db.pragma("wal_autocheckpoint = 0");
  const ckpt = /ckpt=(\d+)/.exec(variant);
  if (ckpt) db.pragma(`wal_autocheckpoint = ${ckpt[1]}`);
  return db;
}

interface Cost {
  cpuUs: number;
  wallUs: number;
  /** Wall time in COMMIT (the WAL's write and fsync, and a checkpoint when one is due), per row. */
  commitUs: number;
}

function writeBatches(db: Database.Database, rows: KeyRow[], variant: string, asSoft: boolean): Cost {
  const sorted = variant.includes("sorted");
  const rowWriter = prepareRowWriter(db);
  // The rows as the writer thread receives them: serialized in parts on the main thread (not
  // timed), deserialized on the writer's (timed, as part of its work). As soft rows: the lease's
  // fields of each, in parts as WorkerCommitter packs them.
  const parts: Buffer[][] = [];
  for (let start = 0; start < rows.length; start += batchSize) {
    const batch = rows.slice(start, start + batchSize);
    if (sorted) batch.sort((a, b) => (String(a[1]) < String(b[1]) ? -1 : 1));
    const serialized: Buffer[] = [];
    if (asSoft) {
      const soft = new SoftRowsBuilder(SOFT_ROWS_PER_MESSAGE);
      for (const row of batch) {
        const status = JSON.parse(row[6] as string) as { lastUsed: number; leaseCount: number; holdUntil: number };
        soft.add({ kind: "soft", keyHash: row[1] as string, soft: status });
        if (soft.full) serialized.push(v8.serialize(soft.take()));
      }
      if (soft.size > 0) serialized.push(v8.serialize(soft.take()));
    } else {
      for (let at = 0; at < batch.length; at += ROWS_PER_MESSAGE) serialized.push(v8.serialize(batch.slice(at, at + ROWS_PER_MESSAGE)));
    }
    parts.push(serialized);
  }
  const begin = db.prepare("BEGIN");
  const commit = db.prepare("COMMIT");
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  let commitMs = 0;
  for (const batch of parts) {
    begin.run();
    for (const part of batch) {
      if (asSoft) rowWriter.softRows(v8.deserialize(part) as SoftRows);
      else for (const row of v8.deserialize(part) as KeyRow[]) rowWriter.row(row);
    }
    const c0 = performance.now();
    commit.run();
    commitMs += performance.now() - c0;
  }
  const cpu = process.cpuUsage(cpu0);
  return { cpuUs: (cpu.user + cpu.system) / rows.length, wallUs: ((performance.now() - t0) * 1000) / rows.length, commitUs: (commitMs * 1000) / rows.length };
}

function main(): void {
  const dir = mkdtempSync(path.join(os.tmpdir(), "keypool-first-rows-"));
  const now = Date.now();
  let firstRows = order(keys).map((i) => rowOf(i, now, true));
  if (changeOrder === "hash") firstRows.sort((a, b) => (String(a[1]) < String(b[1]) ? -1 : 1));
  firstRows = firstRows.slice(0, changes);
  const allRows = order(keys).map((i) => rowOf(i, now - 1, false));
  process.stdout.write(`${keys} keys, ${changes} changes in ${changeOrder} order in batches of ${batchSize}; row ~${JSON.stringify(firstRows[0]!).length} bytes\n`);
  const repeats = Number(benchArg("repeats", "3"));
  const results = new Map<string, Cost[]>();
  try {
    for (let repeat = 0; repeat < repeats; repeat++)
    for (const variant of variants) {
      for (const kind of ["first rows (insert)", "rows exist (update)", "rows exist (soft row)"]) {
        const file = path.join(dir, `${variant}-${kind.startsWith("first") ? "first" : "update"}.db`);
        const page = /page=(\d+)/.exec(variant);
        if (page) {
          const db = new Database(file);
          db.pragma(`page_size = ${page[1]}`);
          db.exec("VACUUM");
          db.close();
        }
        SqliteStateStore.open(file).close();
        if (kind.startsWith("rows exist")) {
          const db = writer(file, "");
          const rowWriter = prepareRowWriter(db);
          db.transaction(() => allRows.forEach((row) => rowWriter.row(row)))();
          db.pragma("wal_checkpoint(TRUNCATE)");
          db.close();
        }
        const db = writer(file, variant);
        const r = writeBatches(db, firstRows, variant, kind.includes("soft"));
        const wal = statSync(`${file}-wal`).size;
        db.close();
        const label = `${variant.padEnd(16)} ${kind.padEnd(20)}`;
        results.set(label, [...(results.get(label) ?? []), r]);
        process.stdout.write(
          `  ${label} CPU ${r.cpuUs.toFixed(1)} µs/row, wall ${r.wallUs.toFixed(1)} (in COMMIT ${r.commitUs.toFixed(1)}), file ${(statSync(file).size / 2 ** 20).toFixed(1)} MiB, WAL at end ${(wal / 2 ** 20).toFixed(1)} MiB\n`,
        );
        rmSync(file, { force: true });
        rmSync(`${file}-wal`, { force: true });
        rmSync(`${file}-shm`, { force: true });
      }
    }
    process.stdout.write(`medians of ${repeats}:\n`);
    for (const [label, costs] of results) {
      const med = (f: (c: Cost) => number) => median(costs.map(f)).toFixed(1);
      process.stdout.write(`${label} CPU ${med((c) => c.cpuUs)} µs/row, wall ${med((c) => c.wallUs)}, in COMMIT ${med((c) => c.commitUs)}\n`);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

main();
