/** The restore plan of a whole list of stored keys at once, through the planner a start uses row by row. */
import { hashKey, type KeyHasher } from "../../../src/domain/key-hash";
import type { KeyRecord, KeySpec } from "../../../src/domain/types";
import { RestorePlanner, type RestorePlan } from "../../../src/storage/restore";
import type { StoredKey } from "../../../src/storage/state-store";

export function planRestore(stored: readonly StoredKey[], configured: readonly KeySpec[], hasher: KeyHasher = hashKey): RestorePlan & { records: KeyRecord[] } {
  const planner = new RestorePlanner(configured, hasher);
  const records: KeyRecord[] = [];
  for (const entry of stored) {
    const record = planner.take(entry);
    if (record) records.push(record);
  }
  return { records, ...planner.finish() };
}
