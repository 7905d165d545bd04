/**
 * How a StoreWrite becomes SQL on the `keys` table. Shared by the synchronous store (start-up,
 * tests) and the commit worker (commit-worker.ts), which receives the rows ready to bind: the
 * status is turned into JSON on the caller's side so that only strings cross threads.
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

export function toKeyRow(write: StoreWrite, now: number): KeyRow {
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

/** Keeps the secret out of the JSON column: it has its own column. */
function statusOnly(status: KeyStatus): KeyStatus {
  if (!("key" in status)) return status;
  const { key: _secret, ...rest } = status as KeyRecord;
  return rest;
}
