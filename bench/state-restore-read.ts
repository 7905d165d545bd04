/**
 * What reading the stored rows at start costs with the soft rows beside them: a state file with a
 * row for every key, read as a start reads it (SqliteStateStore.storedKeys: the file opened and
 * checked, each row parsed, its soft row joined), with no soft rows and again once every key has
 * one; beside it, the rows alone read and parsed with and without the join (the statement before
 * key_soft existed reads the keys table alone).
 *
 *   npx tsx bench/state-restore-read.ts [--keys=100000] [--repeats=3]
 *
 * Not a test: figures depend on the machine. BENCHMARKS.md §5 records them.
 */
import { mkdtempSync, rmSync } from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import Database from "better-sqlite3";
import { SqliteStateStore } from "../src/storage/sqlite-store";
import type { StoreWrite } from "../src/storage/state-store";
import { benchArg } from "./lib/ab-args";
import { writeKeysFile } from "./lib/keys-file";
import { median } from "./lib/stats";
import { writeEveryKeyRow } from "./lib/stored-rows";

function timeMs(run: () => number): { ms: number; rows: number } {
  const t0 = performance.now();
  const rows = run();
  return { ms: performance.now() - t0, rows };
}

function main(): void {
  const keys = Number(benchArg("keys", "100000"));
  const repeats = Number(benchArg("repeats", "3"));
  const dir = mkdtempSync(path.join(os.tmpdir(), "keypool-restore-read-"));
  try {
    const keysFile = path.join(dir, "keys.json");
    writeKeysFile(keysFile, keys);
    const file = path.join(dir, "keypool.db");
    writeEveryKeyRow(keysFile, file);
    const readAll = () => {
      const store = SqliteStateStore.open(file);
      let n = 0;
      for (const stored of store.storedKeys()) n += stored.record.leaseCount > 0 ? 1 : 1;
      store.close();
      return n;
    };
    const readRaw = (sql: string) => () => {
      const db = new Database(file, { readonly: true });
      let n = 0;
      for (const row of db.prepare(sql).iterate() as IterableIterator<{ status: string }>) {
        n += (JSON.parse(row.status) as { leaseCount: number }).leaseCount >= 0 ? 1 : 0;
      }
      db.close();
      return n;
    };
    const keysAlone = readRaw("SELECT key_hash, origin, secret, status, removed_at FROM keys ORDER BY key_hash");
    const joined = readRaw(`
      SELECT k.key_hash, k.origin, k.secret, k.status, k.removed_at, s.last_used, s.lease_count, s.hold_until
      FROM keys k LEFT JOIN key_soft s ON s.key_hash = k.key_hash
      ORDER BY k.key_hash`);
    const results = new Map<string, number[]>();
    const measure = (label: string, run: () => number) => {
      const r = timeMs(run);
      if (r.rows !== keys) throw new Error(`${label}: ${r.rows} rows`);
      results.set(label, [...(results.get(label) ?? []), r.ms]);
    };
    for (let i = 0; i < repeats; i++) {
      measure("rows parsed, keys table alone (the statement before key_soft)", keysAlone);
      measure("rows parsed, joined with key_soft, no soft rows", joined);
      measure("storedKeys (open, checks, parse, join), no soft rows", readAll);
    }
    const store = SqliteStateStore.open(file);
    const hashes = [...store.storedKeys()].map((k) => k.record.keyHash);
    store.writeBatch(hashes.map((keyHash, i): StoreWrite => ({ kind: "soft", keyHash, soft: { lastUsed: i, leaseCount: 2, holdUntil: i } })));
    store.close();
    for (let i = 0; i < repeats; i++) {
      measure("rows parsed, joined with key_soft, every key with a soft row", joined);
      measure("storedKeys (open, checks, parse, join), every key with a soft row", readAll);
    }
    console.log(`${keys} stored rows, ms to read them all as a start does (${repeats} runs):`);
    for (const [label, ms] of results) console.log(`  ${label}: median ${median(ms).toFixed(0)} ms (${ms.map((m) => m.toFixed(0)).join(", ")})`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

main();
