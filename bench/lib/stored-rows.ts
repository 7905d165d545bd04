/**
 * A state file in which every key of a keys file has its row, as after a production run in which
 * every key was leased and reported on once: what a restart then reads. Written through keypool's
 * own code: a KeyPool leases each key once and counts a prompt on it (IncrementUsage), and the
 * SQLite store writes each key's status the way the state writer writes a key's first change
 * (the whole row, secret included, origin "config").
 */
import { readFileSync } from "node:fs";
import { systemClock } from "../../src/domain/clock";
import { KeyPool } from "../../src/domain/key-pool";
import type { KeySpec } from "../../src/domain/types";
import { SqliteStateStore } from "../../src/storage/sqlite-store";
import type { StoreWrite } from "../../src/storage/state-store";
import { BENCH_MODEL } from "./keypool-rpc";

/** Rows written per transaction. */
const BATCH = 10_000;

/** Writes a row for every key of `keysFile` (a JSON list of specs) into the state file `stateFile`. */
export function writeEveryKeyRow(keysFile: string, stateFile: string): number {
  const specs = JSON.parse(readFileSync(keysFile, "utf8")) as KeySpec[];
  const pool = new KeyPool({ clock: systemClock, reuseDelayMs: 0 });
  const { added } = pool.addKeys(specs);
  const written = new Set<string>();
  const store = SqliteStateStore.open(stateFile);
  try {
    // Lease picks the least recently used key, so `added` Leases reach every key once.
    for (let start = 0; start < added; start += BATCH) {
      const writes: StoreWrite[] = [];
      for (let i = start; i < Math.min(added, start + BATCH); i++) {
        const lease = pool.lease({ model: BENCH_MODEL });
        pool.incrementUsage({ keyHash: lease.keyHash, model: BENCH_MODEL, inputTokens: 120, outputTokens: 40, leaseId: lease.leaseId });
        const status = pool.getKey(lease.keyHash)!;
        writes.push({ kind: "upsert", status, secret: pool.secretOf(lease.keyHash), removedAt: 0 });
        written.add(lease.keyHash);
      }
      store.writeBatch(writes);
    }
  } finally {
    store.close();
    pool.close();
  }
  if (written.size !== added) throw new Error(`rows for ${written.size} of ${added} keys`);
  return written.size;
}
