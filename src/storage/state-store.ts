/**
 * What durable storage keeps, whatever the medium: one row per key ever seen, with its last known
 * state and secret. The pool stays the hot path; a store is written behind it (see
 * group-commit.ts) and read once at start (see restore.ts).
 */
import type { KeyRecord, KeySoftState, KeyStatus, ProviderId } from "../domain/types";

/**
 * Where a key came from. Configured keys follow the configuration (a key that leaves it leaves
 * the pool at the next start); keys added at run time by AddKeys stay until RemoveKey, since
 * nothing but the store remembers them.
 */
export type KeyOrigin = "config" | "runtime";

export interface StoredKey {
  record: KeyRecord;
  origin: KeyOrigin;
  /** When RemoveKey took the key out of the pool (epoch ms); 0 while it is in the pool. */
  removedAt: number;
}

/** One change to write. A row is written whole (the latest state wins), or a leased key's soft fields. */
export type StoreWrite =
  | {
      kind: "upsert";
      status: KeyStatus;
      /** Absent: keep the stored secret (a row without one is not created). */
      secret?: string;
      /** Absent: keep the stored origin ("config" for a new row: key-rows.ts). */
      origin?: KeyOrigin;
      /** Non-zero: the key is written as removed (its history kept). */
      removedAt: number;
    }
  | {
      /**
       * Marks a key removed, keeping its history: its last written state, or `status` when
       * given. A key never written before (a configured key that never changed) gets a row
       * without a secret, so that the removal outlives a restart.
       */
      kind: "remove";
      keyHash: string;
      provider: ProviderId;
      modelFamilies: readonly string[];
      status?: KeyStatus;
      origin?: KeyOrigin;
      removedAt: number;
    }
  | {
      /**
       * A key whose row is written and whose only changes since are leases: their fields alone,
       * in the key_soft table, instead of the whole row again.
       */
      kind: "soft";
      keyHash: string;
      soft: KeySoftState;
    };

export interface StateStore {
  /** Human-readable place, for logs: a file path or "memory". */
  readonly location: string;
  /** Applies the writes atomically and durably: when this returns, they survive a crash. */
  writeBatch(writes: readonly StoreWrite[]): void;
  /** Makes the file self-contained (WAL checkpoint) and releases it. Idempotent. */
  close(): void;
}
