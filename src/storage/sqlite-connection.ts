/**
 * What every connection that writes the state file shares: its pragmas, and its statement for
 * each kind of row (key-rows.ts), full or soft. The synchronous store and the commit worker both
 * open their connections through here, so they write the same way.
 */
import type Database from "better-sqlite3";
import {
  KEY_ROW_FIELDS,
  KEY_ROW_SQL,
  SOFT_ROW_NUMBERS,
  SOFT_ROW_SQL,
  type KeyRow,
  type KeyRowField,
  type KeyRowValue,
  type SoftRows,
} from "./key-rows";

/**
 * WAL pages after which a commit folds the WAL back into the main file (SQLite's default is
 * 1,000). A lazy write of a large pool's soft state is thousands of rows, more than 1,000 pages:
 * with the default every such commit also checkpoints. A larger WAL checkpoints less often, and
 * copies a page written by several commits once: a fifth less of the writer's CPU per row
 * (bench/state-first-rows.ts). It also bounds the WAL file: about 40 MB with 4 KiB pages.
 */
const WAL_CHECKPOINT_PAGES = 10_000;

/**
 * Waits up to 5 s for another connection's lock, and fsyncs the WAL at every commit (WAL +
 * FULL): once acknowledged, a change survives a machine crash too. Folding the WAL back (a
 * checkpoint) only moves committed pages into the main file: it changes nothing of that.
 */
export function useWriterPragmas(db: Database.Database): void {
  db.pragma("busy_timeout = 5000");
  db.pragma("synchronous = FULL");
  db.pragma(`wal_autocheckpoint = ${WAL_CHECKPOINT_PAGES}`);
}

/** Folds the WAL back into the main file, so that a copy of the .db alone is a full backup. */
export function checkpointWal(db: Database.Database): void {
  db.pragma("wal_checkpoint(TRUNCATE)");
}

/** How a connection writes rows, each within the transaction its caller opened. */
export interface RowWriter {
  /** A row of keys; the key's soft row, now older than it, goes. */
  row(row: KeyRow): void;
  /** A key's soft row (key_soft). */
  soft(keyHash: string, lastUsed: number, leaseCount: number, holdUntil: number): void;
  /** Soft rows as they cross threads. */
  softRows(rows: SoftRows): void;
}

/** Prepares the row statements once. */
export function prepareRowWriter(db: Database.Database): RowWriter {
  const statements = {
    upsert: preparePositional(db, KEY_ROW_SQL.upsert),
    update: preparePositional(db, KEY_ROW_SQL.update),
    remove: preparePositional(db, KEY_ROW_SQL.remove),
  };
  const softUpsert = db.prepare(SOFT_ROW_SQL.upsert);
  const softClear = db.prepare(SOFT_ROW_SQL.clear);
  const soft = (keyHash: string, lastUsed: number, leaseCount: number, holdUntil: number): void => {
    softUpsert.run(keyHash, lastUsed, leaseCount, holdUntil);
  };
  return {
    row(row) {
      statements[row[0]](row);
      // Values follow the op in KEY_ROW_FIELDS order: the key hash first.
      softClear.run(row[1]);
    },
    soft,
    softRows({ keyHashes, numbers }) {
      for (let i = 0, at = 0; i < keyHashes.length; i++, at += SOFT_ROW_NUMBERS) {
        soft(keyHashes[i]!, numbers[at]!, numbers[at + 1]!, numbers[at + 2]!);
      }
    },
  };
}

/**
 * The statement with each `@name` made a `?`, bound from the row's values in the order the
 * names appear: binding an array skips better-sqlite3's lookup of every name in an object.
 */
function preparePositional(db: Database.Database, sql: string): (row: KeyRow) => void {
  const slots: number[] = [];
  const text = sql.replace(/@(\w+)/g, (_, name: string) => {
    const field = KEY_ROW_FIELDS.indexOf(name as KeyRowField);
    if (field < 0) throw new Error(`a row statement names @${name}, which KEY_ROW_FIELDS lacks`);
    slots.push(field + 1);
    return "?";
  });
  const statement = db.prepare(text);
  return (row) => {
    const values: KeyRowValue[] = new Array(slots.length);
    for (let i = 0; i < slots.length; i++) values[i] = row[slots[i]!] as KeyRowValue;
    statement.run(values);
  };
}
