/**
 * The one call the server makes at start: opens KEYPOOL_STATE, fills the pool from the stored
 * and configured keys (restore.ts), and returns the durability hook that the transport awaits
 * before answering a call that changed the pool.
 */
import * as path from "node:path";
import type { ChangeFeed } from "../domain/change-feed";
import type { Clock } from "../domain/clock";
import type { KeyHasher } from "../domain/key-hash";
import type { KeyRecord, KeySpec, KeyStatus, PoolEvent } from "../domain/types";
import { WorkerCommitter } from "./committers";
import type { Durability, DurablePool } from "../domain/pool-api";
import { StateFileLostError } from "./file-identity";
import { GroupCommitWriter, type GroupCommitStats } from "./group-commit";
import { RestorePlanner, type RestorePlan } from "./restore";
import { SqliteStateStore, classify } from "./sqlite-store";
import { StateLock } from "./state-lock";
import type { StoreWrite } from "./state-store";

/** KEYPOOL_STATE's value that keeps nothing. */
export const MEMORY_STATE = "memory";


/** pino's Logger fits. */
export interface StorageLogger {
  info(fields: object, message: string): void;
  warn(fields: object, message: string): void;
  error(fields: object, message: string): void;
}

export interface DurableStateOptions {
  /** KEYPOOL_STATE: a file path, or "memory". */
  location: string;
  pool: DurablePool;
  /** Keys from the environment and the keys file. */
  configured: KeySpec[];
  clock: Clock;
  logger: StorageLogger;
  /** The pool's key hasher, when it was given one (tests); default hashKey. */
  keyHasher?: KeyHasher;
  /** How long soft state (last used, holds) may wait to be written. Default 1000 ms. */
  lazyMs?: number;
  /** Told how long each commit took (metrics). */
  onCommitted?: (seconds: number) => void;
}

export interface DurableState extends Durability {
  /** The absolute file path, or "memory". */
  readonly location: string;
  readonly persistent: boolean;
  /** The lock held on the file while keypool runs (state-lock.ts); none for memory. */
  readonly lock?: StateLock;
  /** Commits so far (none for memory). */
  readonly stats: GroupCommitStats;
  /** Keys changed and not yet committed (always 0 for memory). */
  readonly queued: number;
  /** Writes everything (soft state too) and releases the file. Call after the server stopped. */
  close(): void;
}

/**
 * Opens the state and fills the pool. Throws StateFileError (naming the file) when the state
 * file cannot be used: the caller must stop, never carry on with an empty pool.
 */
export function openDurableState(options: DurableStateOptions): DurableState {
  const { pool, logger } = options;
  const { location } = options;
  if (location === MEMORY_STATE) {
    const { duplicates } = pool.addKeys(options.configured);
    if (duplicates > 0) logger.warn({ duplicates }, "duplicate keys in the configuration were skipped");
    logger.warn({ state: MEMORY_STATE }, "KEYPOOL_STATE=memory: nothing is kept across restarts");
    return {
      location: MEMORY_STATE,
      persistent: false,
      stats: { commits: 0, keysWritten: 0 },
      queued: 0,
      flush: () => Promise.resolve(),
      close: () => {},
    };
  }

  // The lock comes first: a second keypool must not even migrate a file another one is using.
  const lock = StateLock.acquire(path.resolve(location));
  let store: SqliteStateStore | undefined;
  try {
    store = SqliteStateStore.open(location);
    return startFrom(store, lock, options);
  } catch (err) {
    try {
      store?.close();
    } catch {
      // The first failure is the one to report (a full disk fails the close's checkpoint too).
    }
    lock.release();
    // Whatever failed (reading, the first writes, the checkpoint), the message names the file.
    throw store ? classify(err, store.location) : err;
  }
}

function startFrom(store: SqliteStateStore, lock: StateLock, options: DurableStateOptions): DurableState {
  const { pool, logger } = options;
  const filled = fillPool(store, options);
  if (filled.configuredDuplicates > 0) {
    logger.warn({ duplicates: filled.configuredDuplicates }, "duplicate keys in the configuration were skipped");
  }
  for (const keyHash of filled.leftConfiguration) {
    logger.info(
      { keyHash, state: store.location },
      "stored key is no longer configured: it leaves the pool; its history stays in the state file",
    );
  }
  for (const keyHash of filled.removedButConfigured) {
    logger.warn(
      { keyHash, state: store.location },
      "configured key was removed with RemoveKey: it stays out of the pool (AddKeys brings it back)",
    );
  }

  // Only the stored keys whose families the configuration changed are written now. A new
  // configured key gets its row when it first changes (a row made without an origin is a
  // configured key's, key-rows.ts): until then the configuration holds all there is to know, so a
  // large pool starts as fast as in memory.
  const writes: StoreWrite[] = [];
  for (const keyHash of filled.changedByConfiguration) {
    const status = pool.getKey(keyHash);
    if (!status) continue;
    writes.push({
      kind: "upsert",
      status,
      secret: pool.secretOf(keyHash),
      removedAt: 0,
    });
  }
  store.writeBatch(writes);
  logger.info(
    {
      state: store.location,
      restored: filled.restored,
      added: filled.added,
      leftConfiguration: filled.leftConfiguration.length,
      stored: filled.stored,
    },
    "state file opened",
  );

  // From here on a worker thread with its own connection writes (committers.ts); this
  // connection's work is done.
  store.close();
  const committer = new WorkerCommitter(store.location);
  const writer = new GroupCommitWriter(committer, pool, {
    clock: options.clock,
    lazyMs: options.lazyMs,
    onCommitted: options.onCommitted,
    unstored: filled.addedKeyHashes,
    onError: (err, cause) => {
      if (cause instanceof StateFileLostError) {
        logger.error(
          { state: store.location, err: cause.message },
          `state file ${store.location} was ${cause.replaced ? "replaced by another file" : "deleted"} while keypool was running: changes are no longer acknowledged (UNAVAILABLE) and health is NOT_SERVING; they are kept in memory and saved once the file is back at its path`,
        );
      } else {
        logger.error({ state: store.location, err: err.message }, "saving state failed");
      }
    },
  });
  return {
    location: store.location,
    persistent: true,
    lock,
    stats: writer.stats,
    get queued() {
      return writer.queued;
    },
    flush: () => writer.flush(),
    watchSaving: (listener) => writer.watchSaving(listener),
    close: () => {
      try {
        writer.close();
      } finally {
        lock.release();
      }
      logger.info({ state: store.location, ...writer.stats }, "state file closed");
    },
  };
}

/** Keys restored per pool.restore call at start. */
const RESTORE_SLICE = 4096;

interface Filled extends Omit<RestorePlan, "newSpecs"> {
  /** Rows read, removed keys included. */
  stored: number;
  restored: number;
  added: number;
  /** The keys added (configured, never stored): they have no row yet. */
  addedKeyHashes: string[];
}

/**
 * Fills the pool from the state file's rows and the configured keys (restore.ts). The rows are
 * read, planned and restored a slice at a time, so that the parsed rows of a large file and the
 * pool's entries are never all alive together. With no row at all (a new state file, or one no
 * key has changed in yet) every configured key is new: they go to the pool as they are, which
 * hashes each once and counts the duplicates, as with KEYPOOL_STATE=memory. A record the pool
 * refuses stops the start (the caller throws).
 */
function fillPool(store: SqliteStateStore, options: DurableStateOptions): Filled {
  const { pool } = options;
  const rows = store.storedKeys();
  let row = rows.next();
  if (row.done) {
    const { added, duplicates, keyHashes } = pool.addKeys(options.configured);
    return {
      stored: 0,
      restored: 0,
      added,
      addedKeyHashes: keyHashes,
      configuredDuplicates: duplicates,
      leftConfiguration: [],
      removedButConfigured: [],
      changedByConfiguration: [],
    };
  }
  const planner = new RestorePlanner(options.configured, options.keyHasher);
  let stored = 0;
  let restored = 0;
  let slice: KeyRecord[] = [];
  try {
    for (; !row.done; row = rows.next()) {
      stored++;
      const record = planner.take(row.value);
      if (!record) continue;
      slice.push(record);
      if (slice.length === RESTORE_SLICE) {
        pool.restore(slice);
        restored += slice.length;
        slice = [];
      }
    }
  } finally {
    // A refused record ends the reading too: the connection is then free to close.
    rows.return(undefined);
  }
  if (slice.length > 0) pool.restore(slice);
  restored += slice.length;
  const { newSpecs, ...rest } = planner.finish();
  const addedKeyHashes = newSpecs.length > 0 ? pool.addKeys(newSpecs).keyHashes : [];
  return { stored, restored, added: newSpecs.length, addedKeyHashes, ...rest };
}
