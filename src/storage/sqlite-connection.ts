/**
 * What every connection that writes the state file shares: its pragmas, and its statement for
 * each kind of row (key-rows.ts). The synchronous store and the commit worker both open their
 * connections through here, so they write the same way.
 */
import type Database from "better-sqlite3";
import { KEY_ROW_SQL, type KeyRow } from "./key-rows";

/**
 * Waits up to 5 s for another connection's lock, and fsyncs the WAL at every commit (WAL +
 * FULL): once acknowledged, a change survives a machine crash too.
 */
export function useWriterPragmas(db: Database.Database): void {
  db.pragma("busy_timeout = 5000");
  db.pragma("synchronous = FULL");
}

/** Folds the WAL back into the main file, so that a copy of the .db alone is a full backup. */
export function checkpointWal(db: Database.Database): void {
  db.pragma("wal_checkpoint(TRUNCATE)");
}

/** Prepares the three row statements once; the result runs one row. */
export function prepareKeyRowStatements(db: Database.Database): (row: KeyRow) => void {
  const statements = {
    upsert: db.prepare(KEY_ROW_SQL.upsert),
    update: db.prepare(KEY_ROW_SQL.update),
    remove: db.prepare(KEY_ROW_SQL.remove),
  };
  return (row) => {
    statements[row.op].run(row.params);
  };
}
