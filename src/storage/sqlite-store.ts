/**
 * The default store: one SQLite file (better-sqlite3), WAL journal, synchronous=FULL.
 *
 * FULL fsyncs the WAL at every commit, so a committed batch survives not only kill -9 of the
 * process but a machine crash too. Commits are grouped (group-commit.ts), so one fsync serves
 * every change made while the previous one ran; that keeps throughput (see BENCHMARKS.md).
 *
 * Opening is strict: a path that is a directory, a file that is not a SQLite database, a file
 * that fails `PRAGMA quick_check`, a database of some other program, or a schema newer than this
 * code each throw a StateFileError naming the file. An unusable file is never replaced by an
 * empty pool.
 */
import * as fs from "node:fs";
import * as path from "node:path";
import Database from "better-sqlite3";
import { readyAtOf } from "../domain/key-entry";
import type { KeyRecord, KeyStatus } from "../domain/types";
import { checkSameFile, identityOf, type FileIdentity } from "./file-identity";
import { toKeyRow } from "./key-rows";
import { LATEST_SCHEMA_VERSION, MIGRATIONS, type Migration } from "./migrations";
import { checkpointWal, prepareRowWriter, useWriterPragmas } from "./sqlite-connection";
import { StateFileError } from "./state-file-error";
import type { KeyOrigin, StateStore, StoredKey, StoreWrite } from "./state-store";

/** The file holds secrets: only its owner may read it. */
const FILE_MODE = 0o600;
const DIRECTORY_MODE = 0o700;
const SQLITE_HEADER = "SQLite format 3\0";

export interface SqliteStoreOptions {
  /** For tests of upgrades; the real list by default. */
  migrations?: readonly Migration[];
  /** Wall-clock time for `updated_at` and `applied_at`. */
  now?: () => number;
  /** Refuse rather than create a missing file (a writer that lost its file must not start anew). */
  mustExist?: boolean;
}

/** A row of the keys table as storedKeys reads it, with its key's soft row if it has one. */
interface StoredRow {
  key_hash: string;
  origin: string;
  secret: string;
  status: string;
  removed_at: number;
  last_used: number | null;
  lease_count: number | null;
  hold_until: number | null;
}

export class SqliteStateStore implements StateStore {
  private closed = false;
  private readonly applyBatch: (writes: readonly StoreWrite[]) => void;

  private constructor(
    readonly location: string,
    private readonly db: Database.Database,
    private readonly now: () => number,
    /** The file opened: a batch counts as written only while the path still names it. */
    private readonly opened: FileIdentity,
  ) {
    const writer = prepareRowWriter(db);
    this.applyBatch = db.transaction((writes: readonly StoreWrite[]) => {
      const now = this.now();
      for (const write of writes) {
        if (write.kind === "soft") writer.soft(write.keyHash, write.soft.lastUsed, write.soft.leaseCount, write.soft.holdUntil);
        else writer.row(toKeyRow(write, now));
      }
    });
  }

  /** Opens (creating when absent) the state file at `file`; throws StateFileError if unusable. */
  static open(file: string, options: SqliteStoreOptions = {}): SqliteStateStore {
    const location = path.resolve(file);
    const now = options.now ?? Date.now;
    const fresh = prepareFile(location, options.mustExist ?? false);
    let db: Database.Database;
    try {
      db = new Database(location, { fileMustExist: true });
    } catch (err) {
      throw new StateFileError(location, `cannot be opened (${describe(err)})`, CHECK_PERMISSIONS);
    }
    try {
      checkIntegrity(db, location, fresh);
      migrate(db, location, options.migrations ?? MIGRATIONS, now);
      ownerOnly(location);
      const opened = identityOf(location);
      if (!opened) throw new StateFileError(location, "disappeared while it was being opened", CHECK_PERMISSIONS);
      return new SqliteStateStore(location, db, now, opened);
    } catch (err) {
      db.close();
      throw err instanceof StateFileError ? err : classify(err, location);
    }
  }

  /** The schema version the file is at (for tests and diagnostics). */
  schemaVersion(): number {
    return currentVersion(this.db);
  }

  /**
   * Every stored key, removed ones included, sorted by key hash, parsed as it is read: a start
   * that consumes them one at a time never holds every parsed row (durable-state.ts). A key's
   * soft row (key_soft) is newer than its status: its lease fields win. The connection serves
   * nothing else until the iteration ends.
   */
  *storedKeys(): Generator<StoredKey> {
    const statement = this.db.prepare(`
      SELECT k.key_hash, k.origin, k.secret, k.status, k.removed_at, s.last_used, s.lease_count, s.hold_until
      FROM keys k LEFT JOIN key_soft s ON s.key_hash = k.key_hash
      ORDER BY k.key_hash`);
    for (const row of statement.iterate() as IterableIterator<StoredRow>) yield this.toStoredKey(row);
  }

  writeBatch(writes: readonly StoreWrite[]): void {
    if (this.closed) throw new Error(`keypool state file ${this.location} is closed`);
    if (writes.length > 0) this.applyBatch(writes);
    checkSameFile(this.location, this.opened);
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    try {
      checkpointWal(this.db);
    } finally {
      this.db.close();
    }
  }

  private toStoredKey(row: StoredRow): StoredKey {
    let status: KeyStatus;
    try {
      status = JSON.parse(row.status) as KeyStatus;
    } catch {
      throw new StateFileError(
        this.location,
        `the stored state of key ${row.key_hash} is not valid JSON (the file is damaged)`,
        RESTORE_BACKUP,
      );
    }
    if (status.keyHash !== row.key_hash || typeof status.provider !== "string") {
      throw new StateFileError(
        this.location,
        `the stored state of key ${row.key_hash} does not describe that key (the file is damaged)`,
        RESTORE_BACKUP,
      );
    }
    const record = status as KeyRecord;
    record.key = row.secret;
    if (row.last_used !== null) {
      record.lastUsed = row.last_used;
      record.leaseCount = row.lease_count!;
      record.holdUntil = row.hold_until!;
      record.readyAt = readyAtOf({ holdUntil: record.holdUntil, cooldownUntil: record.cooldownUntil ?? 0 });
    }
    return { record, origin: row.origin as KeyOrigin, removedAt: row.removed_at };
  }
}

const CHECK_PERMISSIONS =
  "Check that the path names a file that keypool's user can read and write, or set KEYPOOL_STATE to another path (or to 'memory' to keep nothing).";
const RESTORE_BACKUP =
  "Restore it from a backup, or move it away to start with an empty pool (every stored key state and usage is then lost).";

/**
 * Makes sure `location` is a regular file keypool may use, creating it (and its directory) with
 * owner-only permissions when absent. Returns whether it was created.
 */
function prepareFile(location: string, mustExist: boolean): boolean {
  refuseLinkToNothing(location);
  let stat: fs.Stats | undefined;
  try {
    stat = fs.statSync(location);
  } catch (err) {
    if (errno(err) !== "ENOENT") {
      throw new StateFileError(location, `cannot be examined (${describe(err)})`, CHECK_PERMISSIONS);
    }
  }
  if (stat) {
    if (stat.isDirectory()) {
      throw new StateFileError(location, "is a directory, not a file", CHECK_PERMISSIONS);
    }
    if (!stat.isFile()) throw new StateFileError(location, "is not a regular file", CHECK_PERMISSIONS);
    try {
      fs.accessSync(location, fs.constants.R_OK | fs.constants.W_OK);
    } catch (err) {
      throw new StateFileError(location, `cannot be read and written (${describe(err)})`, CHECK_PERMISSIONS);
    }
    return stat.size === 0;
  }
  if (mustExist) throw new StateFileError(location, "does not exist (any more)", CHECK_PERMISSIONS);
  const directory = path.dirname(location);
  try {
    fs.mkdirSync(directory, { recursive: true, mode: DIRECTORY_MODE });
  } catch (err) {
    throw new StateFileError(
      location,
      `its directory ${directory} cannot be created (${describe(err)})`,
      CHECK_PERMISSIONS,
    );
  }
  try {
    const fd = fs.openSync(location, "wx", FILE_MODE);
    try {
      // The umask may have taken bits away, never added them; fchmod makes the mode exact.
      fs.fchmodSync(fd, FILE_MODE);
    } finally {
      fs.closeSync(fd);
    }
  } catch (err) {
    throw new StateFileError(location, `cannot be created (${describe(err)})`, CHECK_PERMISSIONS);
  }
  return true;
}

/**
 * A symbolic link to a state file works like the file. A link to an empty file or to nothing is
 * refused: keypool would start a new, empty pool in whatever file the link happens to reach
 * (the link usually points where a state file was expected to be, not where a new one belongs).
 */
function refuseLinkToNothing(location: string): void {
  let link: fs.Stats;
  try {
    link = fs.lstatSync(location);
  } catch {
    return; // nothing at the path: prepareFile decides
  }
  if (!link.isSymbolicLink()) return;
  const target = fs.readlinkSync(location);
  let size: number | undefined;
  try {
    size = fs.statSync(location).size;
  } catch {
    size = undefined;
  }
  if (size === undefined || size === 0) {
    throw new StateFileError(
      location,
      `is a symbolic link to ${size === undefined ? "nothing" : "an empty file"} (${target}); keypool starts a new state file only at a path that names no file`,
      "Point KEYPOOL_STATE at the state file itself (or at a path that does not exist yet, to start with an empty pool).",
    );
  }
}

/**
 * The file holds secrets; a restored backup or an old copy may have been left readable by others.
 * Only done once the file is known to be keypool's: a file keypool refuses is left as it was.
 */
function ownerOnly(location: string): void {
  try {
    if ((fs.statSync(location).mode & 0o077) !== 0) fs.chmodSync(location, FILE_MODE);
  } catch {
    // Not ours to change (another owner): it still works, and its owner decides.
  }
}

/** Refuses anything that is not an intact SQLite database. Reads only. */
function checkIntegrity(db: Database.Database, location: string, fresh: boolean): void {
  if (!fresh) {
    const header = Buffer.alloc(SQLITE_HEADER.length);
    const fd = fs.openSync(location, "r");
    let read: number;
    try {
      read = fs.readSync(fd, header, 0, header.length, 0);
    } finally {
      fs.closeSync(fd);
    }
    if (read < header.length || header.toString("latin1") !== SQLITE_HEADER) {
      throw new StateFileError(location, "is not a SQLite database", RESTORE_BACKUP);
    }
  }
  let problems: string[];
  try {
    useWriterPragmas(db);
    problems = (db.pragma("quick_check") as Array<{ quick_check: string }>).map((r) => r.quick_check);
  } catch (err) {
    throw classify(err, location);
  }
  if (problems.length !== 1 || problems[0] !== "ok") {
    throw new StateFileError(
      location,
      `is corrupt (PRAGMA quick_check: ${problems.slice(0, 3).join("; ")})`,
      RESTORE_BACKUP,
    );
  }
}

/**
 * Checks that the file is keypool's and not newer than this code (reading only, so that a refused
 * file is left as it was), then turns on the WAL journal and applies the missing steps.
 */
function migrate(
  db: Database.Database,
  location: string,
  migrations: readonly Migration[],
  now: () => number,
): void {
  const tables = (
    db.prepare(`SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'`).all() as Array<{
      name: string;
    }>
  ).map((t) => t.name);
  const keypools = tables.includes("schema_migrations");
  if (!keypools && tables.length > 0) {
    throw new StateFileError(
      location,
      `is a SQLite database but not a keypool state file (it has the tables ${tables.join(", ")})`,
      "Set KEYPOOL_STATE to the path of a keypool state file, or to a path that does not exist yet.",
    );
  }
  const known = migrations.length === 0 ? 0 : migrations[migrations.length - 1]!.version;
  const current = keypools ? currentVersion(db) : 0;
  if (current > known) {
    throw new StateFileError(
      location,
      `has schema version ${current}, newer than this keypool knows (${known}); a newer keypool wrote it`,
      "Run that newer keypool (or a later one) with this file; downgrading would lose data.",
    );
  }
  try {
    const mode = db.pragma("journal_mode = WAL", { simple: true });
    if (String(mode).toLowerCase() !== "wal") {
      throw new Error(`the WAL journal could not be turned on (journal mode is ${String(mode)})`);
    }
  } catch (err) {
    throw classify(err, location);
  }
  if (!keypools) {
    db.exec(`CREATE TABLE schema_migrations (
      version     INTEGER PRIMARY KEY,
      description TEXT NOT NULL,
      applied_at  INTEGER NOT NULL
    )`);
  }
  const record = db.prepare(
    `INSERT INTO schema_migrations (version, description, applied_at) VALUES (?, ?, ?)`,
  );
  for (const step of migrations) {
    if (step.version <= current) continue;
    try {
      db.transaction(() => {
        db.exec(step.sql);
        record.run(step.version, step.description, now());
      })();
    } catch (err) {
      throw new StateFileError(
        location,
        `could not be upgraded to schema version ${step.version} (${describe(err)})`,
        RESTORE_BACKUP,
      );
    }
  }
}

function currentVersion(db: Database.Database): number {
  const row = db.prepare(`SELECT MAX(version) AS version FROM schema_migrations`).get() as {
    version: number | null;
  };
  return row.version ?? 0;
}

const FREE_SPACE = "Free space on the disk that holds it (or raise the process's file size limit), then start keypool again.";

/** Any failure to use the file, as a StateFileError naming it. */
export function classify(err: unknown, location: string): StateFileError {
  if (err instanceof StateFileError) return err;
  const code = (err as { code?: string }).code ?? "";
  if (code === "SQLITE_NOTADB") return new StateFileError(location, "is not a SQLite database", RESTORE_BACKUP);
  if (code.startsWith("SQLITE_CORRUPT")) {
    return new StateFileError(location, `is corrupt (${describe(err)})`, RESTORE_BACKUP);
  }
  if (code === "SQLITE_FULL") {
    return new StateFileError(location, `cannot be written: the disk that holds it is full (${describe(err)})`, FREE_SPACE);
  }
  if (code.startsWith("SQLITE_IOERR")) {
    return new StateFileError(location, `cannot be written (${describe(err)})`, `${FREE_SPACE} ${CHECK_PERMISSIONS}`);
  }
  if (code.startsWith("SQLITE_BUSY") || code.startsWith("SQLITE_LOCKED")) {
    return new StateFileError(
      location,
      `is locked by another process (${describe(err)})`,
      "Stop the other keypool (or tool) using it, or give this one its own KEYPOOL_STATE.",
    );
  }
  return new StateFileError(location, `cannot be used (${describe(err)})`, CHECK_PERMISSIONS);
}

function errno(err: unknown): string | undefined {
  return (err as { code?: string }).code;
}

function describe(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

export { LATEST_SCHEMA_VERSION };
