/**
 * How a StoreWrite becomes SQL on the `keys` and `key_soft` tables. Shared by the synchronous
 * store (start-up, tests) and the commit worker (commit-worker.ts), which receives the rows ready
 * to bind: the status is turned into JSON on the caller's side so that only strings cross
 * threads, and soft writes cross as numbers in a typed array (SoftRows).
 */
import { freshKeyStatus } from "../domain/key-entry";
import type { KeyRecord, KeyStatus, ProviderId } from "../domain/types";
import type { StoreWrite } from "./state-store";

/**
 * A write without an origin is for a key that was in the pool at start: a row made for it then
 * is a configured key's (a restored key has its row, whose origin stays). Keys added at run time
 * always name their origin, "runtime".
 */
export const KEY_ROW_SQL = {
  /** A whole row, secret included: inserts a new key or overwrites a known one. */
  upsert: `
    INSERT INTO keys (key_hash, provider, origin, secret, state, status, removed_at, updated_at)
    VALUES (@keyHash, @provider, COALESCE(@origin, 'config'), @secret, @state, @status, @removedAt, @now)
    ON CONFLICT (key_hash) DO UPDATE SET
      provider = excluded.provider,
      origin = COALESCE(@origin, keys.origin),
      secret = excluded.secret,
      state = excluded.state,
      status = excluded.status,
      removed_at = excluded.removed_at,
      updated_at = excluded.updated_at`,
  /** A known key's new state; its secret stays (a row without one is never created). */
  update: `
    UPDATE keys SET
      provider = @provider,
      origin = COALESCE(@origin, origin),
      state = @state,
      status = @status,
      removed_at = @removedAt,
      updated_at = @now
    WHERE key_hash = @keyHash`,
  /** RemoveKey: the row and its history stay; a key never written gets a row (no secret needed). */
  remove: `
    INSERT INTO keys (key_hash, provider, origin, secret, state, status, removed_at, updated_at)
    VALUES (@keyHash, @provider, COALESCE(@origin, 'config'), '', @state, @status, @removedAt, @now)
    ON CONFLICT (key_hash) DO UPDATE SET
      state = CASE WHEN @hasStatus THEN excluded.state ELSE keys.state END,
      status = CASE WHEN @hasStatus THEN excluded.status ELSE keys.status END,
      removed_at = excluded.removed_at,
      updated_at = excluded.updated_at`,
} as const;

export type KeyRowOp = keyof typeof KEY_ROW_SQL;

/** Every value a row statement may bind, in the order a KeyRow holds them after its op. */
export const KEY_ROW_FIELDS = ["keyHash", "provider", "origin", "secret", "state", "status", "removedAt", "now", "hasStatus"] as const;
export type KeyRowField = (typeof KEY_ROW_FIELDS)[number];
export type KeyRowValue = string | number | null;

/**
 * One statement to run: which one, then its values in KEY_ROW_FIELDS order. An array, not an
 * object of named values: rows cross to the writer thread by structured clone, which copies an
 * array of strings for a fraction of what an object with named properties costs on both threads.
 */
export type KeyRow = [op: KeyRowOp, ...values: KeyRowValue[]];

/** A write to the keys table: every kind but "soft". */
export type FullWrite = Exclude<StoreWrite, { kind: "soft" }>;

export function toKeyRow(write: FullWrite, now: number): KeyRow {
  // Values in KEY_ROW_FIELDS order: keyHash, provider, origin, secret, state, status, removedAt, now, hasStatus.
  if (write.kind === "remove") {
    const status = write.status ?? freshKeyStatus(write.keyHash, write.provider, write.modelFamilies);
    const json = JSON.stringify(statusOnly(status));
    return ["remove", write.keyHash, write.provider, write.origin ?? null, null, status.state, json, write.removedAt, now, write.status ? 1 : 0];
  }
  const { status } = write;
  const op = write.secret === undefined ? "update" : "upsert";
  const json = JSON.stringify(statusOnly(status));
  return [op, status.keyHash, status.provider, write.origin ?? null, write.secret ?? null, status.state, json, write.removedAt, now, 1];
}

/**
 * The `key_soft` table (migrations.ts): a leased key's lease fields, written instead of its whole
 * row when nothing else about it changed since that row was written.
 */
export const SOFT_ROW_SQL = {
  /** The key's lease fields, bound in SOFT_ROW_NUMBERS order after its hash; its row in keys stays as it was. */
  upsert: `
    INSERT INTO key_soft (key_hash, last_used, lease_count, hold_until) VALUES (?, ?, ?, ?)
    ON CONFLICT (key_hash) DO UPDATE SET
      last_used = excluded.last_used,
      lease_count = excluded.lease_count,
      hold_until = excluded.hold_until`,
  /**
   * Run with every row written to keys, in its transaction: that row holds the lease fields as
   * they are now, so a soft row is always newer than its key's row (restore lets it override).
   */
  clear: `DELETE FROM key_soft WHERE key_hash = ?`,
} as const;

/** The numbers of a soft row, in this order: lastUsed, leaseCount, holdUntil. */
export const SOFT_ROW_NUMBERS = 3;

/**
 * Soft writes as they cross to the writer thread: key hashes, and SOFT_ROW_NUMBERS numbers per
 * hash in one Float64Array, which structured clone copies as one block instead of an object per row.
 */
export interface SoftRows {
  keyHashes: string[];
  numbers: Float64Array;
}

/** Collects soft writes into SoftRows of at most `capacity` rows. */
export class SoftRowsBuilder {
  private keyHashes: string[] = [];
  private numbers: Float64Array;

  constructor(private readonly capacity: number) {
    this.numbers = new Float64Array(capacity * SOFT_ROW_NUMBERS);
  }

  get size(): number {
    return this.keyHashes.length;
  }

  get full(): boolean {
    return this.keyHashes.length >= this.capacity;
  }

  add(write: Extract<StoreWrite, { kind: "soft" }>): void {
    const at = this.keyHashes.length * SOFT_ROW_NUMBERS;
    this.keyHashes.push(write.keyHash);
    this.numbers[at] = write.soft.lastUsed;
    this.numbers[at + 1] = write.soft.leaseCount;
    this.numbers[at + 2] = write.soft.holdUntil;
  }

  /** The rows so far (a copy trimmed to them), and starts anew. */
  take(): SoftRows {
    const rows = { keyHashes: this.keyHashes, numbers: this.numbers.slice(0, this.keyHashes.length * SOFT_ROW_NUMBERS) };
    this.keyHashes = [];
    return rows;
  }
}

/** Keeps the secret out of the JSON column: it has its own column. */
function statusOnly(status: KeyStatus): KeyStatus {
  if (!("key" in status)) return status;
  const { key: _secret, ...rest } = status as KeyRecord;
  return rest;
}
