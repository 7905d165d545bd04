/**
 * One keypool process per state file. Two processes on one file would each keep their own pool in
 * memory and overwrite each other's rows, silently forking the state; the second one must refuse.
 *
 * The lock is a write lock on a small SQLite file next to the state file (`<state>.lock`), taken
 * with `BEGIN IMMEDIATE` and held until keypool stops. SQLite locks files with fcntl(2), so:
 * - the kernel drops the lock when the process dies in any way (SIGKILL, OOM, power loss of the
 *   process): a stale lock can never block a restart, and there is no lock file to clean up;
 * - it is the locking that better-sqlite3, already a dependency, does anyway: no native add-on of
 *   its own to build, and SQLite also sees two connections of one process as conflicting;
 * - a refused process can still read the holder's PID, because a write lock lets readers in.
 * The state file itself cannot carry the lock: keypool's writer thread opens it on a second
 * connection.
 */
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import Database from "better-sqlite3";
import { StateFileError } from "./state-file-error";

interface Holder {
  pid: number;
  host: string;
  since: string;
}

export class StateLock {
  private released = false;

  private constructor(
    /** The lock file: the state file's path with `.lock` appended. */
    readonly file: string,
    private readonly db: Database.Database,
  ) {}

  /**
   * Takes the lock for the state file at `stateFile` (an absolute path), or throws a
   * StateFileError naming the file and, when it can be read, the process that holds it.
   */
  static acquire(stateFile: string): StateLock {
    const file = `${stateFile}.lock`;
    const directory = path.dirname(stateFile);
    try {
      fs.mkdirSync(directory, { recursive: true, mode: 0o700 });
    } catch (err) {
      throw new StateFileError(stateFile, `its directory ${directory} cannot be created (${describe(err)})`, CHECK_PATH);
    }
    let db: Database.Database;
    try {
      // timeout 0: a held lock is an answer, not something to wait for.
      db = new Database(file, { timeout: 0 });
    } catch (err) {
      throw new StateFileError(stateFile, `its lock file ${file} cannot be opened (${describe(err)})`, CHECK_PATH);
    }
    try {
      // Write who holds it, commit so that others can read it, then hold the write lock. A process
      // that slips in between the two steps holds it instead, and this one is refused: never two.
      hold(db, stateFile);
      db.exec(
        "CREATE TABLE IF NOT EXISTS holder (id INTEGER PRIMARY KEY CHECK (id = 1), pid INTEGER NOT NULL, host TEXT NOT NULL, since TEXT NOT NULL)",
      );
      db.prepare("INSERT OR REPLACE INTO holder (id, pid, host, since) VALUES (1, ?, ?, ?)").run(
        process.pid,
        os.hostname(),
        new Date().toISOString(),
      );
      // Committing waits for readers (a refused process reading the holder) to finish.
      db.pragma("busy_timeout = 2000");
      db.exec("COMMIT");
      db.pragma("busy_timeout = 0");
      hold(db, stateFile);
      return new StateLock(file, db);
    } catch (err) {
      if (db.inTransaction) db.exec("ROLLBACK");
      db.close();
      throw err;
    }
  }

  /** Releases the lock (keypool is stopping). Safe to call more than once. */
  release(): void {
    if (this.released) return;
    this.released = true;
    this.db.exec("ROLLBACK");
    this.db.close();
  }
}

const CHECK_PATH =
  "Check that keypool's user may create files in that directory, or set KEYPOOL_STATE to another path (or to 'memory' to keep nothing).";

function hold(db: Database.Database, stateFile: string): void {
  try {
    db.exec("BEGIN IMMEDIATE");
  } catch (err) {
    if ((err as { code?: string }).code !== "SQLITE_BUSY") {
      throw new StateFileError(stateFile, `its lock file cannot be locked (${describe(err)})`, CHECK_PATH);
    }
    const holder = readHolder(db);
    const who = holder
      ? `process ${holder.pid}${holder.host === os.hostname() ? "" : ` on ${holder.host}`}, running since ${holder.since}`
      : "a process that is still starting";
    throw new StateFileError(
      stateFile,
      `is in use by another keypool (${who})`,
      "Stop that keypool first, or give this one its own file with KEYPOOL_STATE.",
    );
  }
}

function readHolder(db: Database.Database): Holder | undefined {
  try {
    return db.prepare("SELECT pid, host, since FROM holder WHERE id = 1").get() as Holder | undefined;
  } catch {
    // No holder row yet (the other process is between opening and writing it).
    return undefined;
  }
}

function describe(err: unknown): string {
  return (err as { code?: string }).code ?? (err instanceof Error ? err.message : String(err));
}
