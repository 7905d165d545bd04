/**
 * Who writes a batch. The group-commit writer hands one batch at a time to a committer and hears
 * back when it is durable.
 *
 * - WorkerCommitter: a worker thread with its own SQLite connection. The fsync of each commit
 *   happens off the event loop, so calls keep being served while a commit is on its way to disk,
 *   and a slow disk delays only the calls that wait for durability. What arrives meanwhile forms
 *   the next batch: the slower the disk, the larger the batches.
 * - SyncCommitter: writes on the caller's thread (tests, and any StateStore).
 */
import { Worker } from "node:worker_threads";
import { checkSameFile, identityOf, type FileIdentity } from "./file-identity";
import { KEY_ROW_SQL, toKeyRow, type KeyRow } from "./key-rows";
import { SqliteStateStore } from "./sqlite-store";
import type { StateStore, StoreWrite } from "./state-store";

export interface BatchCommitter {
  /** For messages: the file path, or a name. */
  readonly location: string;
  /**
   * Starts writing `writes` in one transaction; `done` is called once, with an error if it
   * failed. The writer never starts a batch before the previous one is done.
   */
  commit(writes: StoreWrite[], done: (err?: Error) => void): void;
  /** Writes `writes`, makes the file self-contained and releases it, before returning. Throws on failure. */
  closeWith(writes: StoreWrite[]): void;
}

export class SyncCommitter implements BatchCommitter {
  constructor(private readonly store: StateStore) {}

  get location(): string {
    return this.store.location;
  }

  commit(writes: StoreWrite[], done: (err?: Error) => void): void {
    try {
      this.store.writeBatch(writes);
    } catch (err) {
      done(err instanceof Error ? err : new Error(String(err)));
      return;
    }
    done();
  }

  closeWith(writes: StoreWrite[]): void {
    try {
      this.store.writeBatch(writes);
    } finally {
      this.store.close();
    }
  }
}

type ToWorker = { type: "batch"; id: number; rows: KeyRow[] } | { type: "close"; rows: KeyRow[] };
type FromWorker = { type: "done"; id: number } | { type: "failed"; id: number; message: string };

/**
 * How long close() waits for the thread's last commit (normally milliseconds). Kept below
 * main.ts's exit deadline: timers cannot fire while this thread waits.
 */
const CLOSE_TIMEOUT_MS = 3000;
/** The shared control block: an Int32 state, then a message. */
const CONTROL_BYTES = 4 + 2048;
const RUNNING = 0;
const CLOSED = 1;
const CLOSE_FAILED = 2;
const THREAD_FAILED = 3;

export class WorkerCommitter implements BatchCommitter {
  private readonly worker: Worker;
  /** Written by the thread, readable here even while this thread blocks in close(). */
  private readonly control = new SharedArrayBuffer(CONTROL_BYTES);
  private nextId = 1;
  private pending: { id: number; done: (err?: Error) => void } | undefined;
  /** Set when the thread died: every later commit fails with it. */
  private broken: Error | undefined;
  private closed = false;
  /**
   * The file the thread opens; each commit is acknowledged only while the path still names it.
   * Absent when there was no file: the thread then fails to open it, and nothing is acknowledged.
   */
  private readonly opened: FileIdentity | undefined;

  /** `file` must be an existing, migrated state file (SqliteStateStore.open made it so). */
  constructor(
    readonly location: string,
    private readonly now: () => number = Date.now,
  ) {
    this.opened = identityOf(location);
    this.worker = new Worker(COMMIT_WORKER_SOURCE, {
      eval: true,
      // Plain JavaScript needs no loader flags (tsx's --import, --cpu-prof ...).
      execArgv: [],
      workerData: {
        file: location,
        driver: require.resolve("better-sqlite3"),
        sql: KEY_ROW_SQL,
        control: this.control,
      },
    });
    // The thread never keeps the process alive: main decides when to stop, and closes us first.
    this.worker.unref();
    this.worker.on("message", (message: FromWorker) => this.onMessage(message));
    this.worker.on("error", (err) => this.fail(new Error(`the state writer thread failed: ${err.message}`)));
    this.worker.on("exit", (code) => {
      if (!this.closed) this.fail(new Error(`the state writer thread stopped (exit code ${code})`));
    });
  }

  commit(writes: StoreWrite[], done: (err?: Error) => void): void {
    if (this.broken) return done(this.broken);
    if (this.pending) return done(new Error("a commit is already on its way"));
    const id = this.nextId++;
    this.pending = { id, done };
    const now = this.now();
    this.worker.postMessage({ type: "batch", id, rows: writes.map((w) => toKeyRow(w, now)) } satisfies ToWorker);
  }

  /**
   * The thread handles messages in order: the batch in flight (if any) is committed before this
   * last one. This thread blocks meanwhile (Atomics.wait), so that a signal handler can exit
   * right after. If the writer thread is gone or stuck, the last batch is written from here.
   */
  closeWith(writes: StoreWrite[]): void {
    if (this.closed) return;
    this.closed = true;
    const state = new Int32Array(this.control, 0, 1);
    if (!this.broken && Atomics.load(state, 0) === RUNNING) {
      const now = this.now();
      this.worker.postMessage({ type: "close", rows: writes.map((w) => toKeyRow(w, now)) } satisfies ToWorker);
      Atomics.wait(state, 0, RUNNING, CLOSE_TIMEOUT_MS);
    }
    const outcome = Atomics.load(state, 0);
    void this.worker.terminate();
    const inFlight = this.pending;
    this.pending = undefined;
    const lost = this.lostError();
    if (lost) {
      // Whatever the thread wrote went to a file that is no longer at the path: not saved.
      inFlight?.done(lost);
      throw lost;
    }
    if (outcome === CLOSED) {
      // Committed before the last batch, whose success implies it.
      inFlight?.done();
      return;
    }
    if (outcome === CLOSE_FAILED) {
      const err = new Error(`the last write to ${this.location} failed: ${this.controlMessage()}`);
      inFlight?.done(err);
      throw err;
    }
    // The thread is gone or stuck: `writes` holds the batch in flight too, so write it all here.
    const why =
      outcome === THREAD_FAILED
        ? `failed (${this.controlMessage()})`
        : this.broken
          ? `stopped (${this.broken.message})`
          : `did not finish within ${CLOSE_TIMEOUT_MS} ms`;
    try {
      const store = SqliteStateStore.open(this.location, { mustExist: true });
      try {
        store.writeBatch(writes);
      } finally {
        store.close();
      }
    } catch (cause) {
      const err = new Error(
        `the last write to ${this.location} failed: the writer thread ${why}, and writing directly failed too (${cause instanceof Error ? cause.message : String(cause)})`,
      );
      inFlight?.done(err);
      throw err;
    }
    inFlight?.done();
  }

  private controlMessage(): string {
    return Buffer.from(this.control, 4).toString("utf8").replace(/\0+$/, "") || "unknown error";
  }

  private onMessage(message: FromWorker): void {
    const pending = this.pending;
    if (!pending || pending.id !== message.id) return;
    this.pending = undefined;
    if (message.type === "failed") return pending.done(new Error(message.message));
    pending.done(this.lostError());
  }

  /** Undefined while the path still names the file the thread writes. */
  private lostError(): Error | undefined {
    if (!this.opened) return undefined;
    try {
      checkSameFile(this.location, this.opened);
      return undefined;
    } catch (err) {
      return err as Error;
    }
  }

  private fail(err: Error): void {
    if (this.broken) return;
    this.broken = err;
    const pending = this.pending;
    this.pending = undefined;
    pending?.done(err);
  }
}

/**
 * The writer thread's whole program, plain JavaScript run from this text (Worker `eval`), so
 * that no compiler or loader (tsc, ts-jest, tsx, coverage) can change it. Everything comes in
 * through `workerData`: the file, the driver's path, the SQL (key-rows.ts) and the control block
 * in which it reports how it closed (1), failed to close (2) or failed altogether (3).
 */
const COMMIT_WORKER_SOURCE = `
"use strict";
const { parentPort, workerData } = require("node:worker_threads");
const control = new Int32Array(workerData.control, 0, 1);
const report = (code, text) => {
  if (text) {
    const bytes = Buffer.from(String(text), "utf8").subarray(0, workerData.control.byteLength - 4);
    new Uint8Array(workerData.control, 4).set(bytes);
  }
  Atomics.store(control, 0, code);
  Atomics.notify(control, 0);
};
const describe = (err) => (err && err.message) || String(err);
let db;
let apply;
try {
  const Database = require(workerData.driver);
  db = new Database(workerData.file, { fileMustExist: true });
  db.pragma("busy_timeout = 5000");
  // Every commit is fsynced (WAL + FULL): once acknowledged, it survives a machine crash too.
  db.pragma("synchronous = FULL");
  const statements = {
    upsert: db.prepare(workerData.sql.upsert),
    update: db.prepare(workerData.sql.update),
    remove: db.prepare(workerData.sql.remove),
  };
  apply = db.transaction((rows) => {
    for (const row of rows) statements[row.op].run(row.params);
  });
} catch (err) {
  report(${THREAD_FAILED}, describe(err));
  throw err;
}
parentPort.on("message", (message) => {
  if (message.type === "batch") {
    try {
      apply(message.rows);
      parentPort.postMessage({ type: "done", id: message.id });
    } catch (err) {
      parentPort.postMessage({ type: "failed", id: message.id, message: describe(err) });
    }
    return;
  }
  if (message.type === "close") {
    let error = "";
    try {
      apply(message.rows);
      // Folds the WAL back into the main file, so that a copy of the .db alone is a full backup.
      db.pragma("wal_checkpoint(TRUNCATE)");
    } catch (err) {
      error = describe(err) || "unknown error";
    }
    try {
      db.close();
    } catch (err) {
      error = error || describe(err);
    }
    report(error ? ${CLOSE_FAILED} : ${CLOSED}, error);
    parentPort.close();
  }
});
`;
