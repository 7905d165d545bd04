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
import { KEY_ROW_SQL, toKeyRow, type KeyRow } from "./key-rows";
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

type ToWorker =
  | { type: "batch"; id: number; rows: KeyRow[] }
  | { type: "close"; rows: KeyRow[]; flag: SharedArrayBuffer; message: SharedArrayBuffer };
type FromWorker = { type: "done"; id: number } | { type: "failed"; id: number; message: string };

/** How long close() waits for the worker's last commit before giving up. */
const CLOSE_TIMEOUT_MS = 15_000;
const CLOSE_MESSAGE_BYTES = 2048;

export class WorkerCommitter implements BatchCommitter {
  private readonly worker: Worker;
  private nextId = 1;
  private pending: { id: number; done: (err?: Error) => void } | undefined;
  /** Set when the worker died: every later commit fails with it. */
  private broken: Error | undefined;
  private closed = false;

  /** `file` must be an existing, migrated state file (SqliteStateStore.open made it so). */
  constructor(
    readonly location: string,
    private readonly now: () => number = Date.now,
  ) {
    this.worker = new Worker(`(${commitWorkerMain.toString()})()`, {
      eval: true,
      workerData: { file: location, driver: require.resolve("better-sqlite3"), sql: KEY_ROW_SQL },
    });
    // The worker never keeps the process alive: main decides when to stop, and closes us first.
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

  closeWith(writes: StoreWrite[]): void {
    if (this.closed) return;
    this.closed = true;
    if (this.broken) {
      void this.worker.terminate();
      throw this.broken;
    }
    // The worker handles messages in order: the batch in flight (if any) is committed before
    // this last one. Main blocks here, briefly, so that a signal handler can exit right after.
    const flag = new SharedArrayBuffer(4);
    const message = new SharedArrayBuffer(CLOSE_MESSAGE_BYTES);
    const now = this.now();
    this.worker.postMessage({ type: "close", rows: writes.map((w) => toKeyRow(w, now)), flag, message } satisfies ToWorker);
    const state = new Int32Array(flag);
    const waited = Atomics.wait(state, 0, 0, CLOSE_TIMEOUT_MS);
    const outcome = Atomics.load(state, 0);
    void this.worker.terminate();
    const inFlight = this.pending;
    this.pending = undefined;
    if (waited === "timed-out" && outcome === 0) {
      const err = new Error(`the last write to ${this.location} did not finish within ${CLOSE_TIMEOUT_MS} ms`);
      inFlight?.done(err);
      throw err;
    }
    if (outcome !== 1) {
      const text = Buffer.from(message).toString("utf8").replace(/\0+$/, "");
      const err = new Error(`the last write to ${this.location} failed: ${text}`);
      inFlight?.done(err);
      throw err;
    }
    // Committed before the last batch, whose success implies it.
    inFlight?.done();
  }

  private onMessage(message: FromWorker): void {
    const pending = this.pending;
    if (!pending || pending.id !== message.id) return;
    this.pending = undefined;
    pending.done(message.type === "done" ? undefined : new Error(message.message));
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
 * The worker thread's whole program. It runs from its source text (Worker `eval`), so it must
 * not refer to anything outside itself: everything comes through `require` and `workerData`.
 */
/* istanbul ignore next -- runs from its source text: coverage counters would not exist there */
function commitWorkerMain(): void {
  const { parentPort, workerData } = require("node:worker_threads") as typeof import("node:worker_threads");
  const Database = require(workerData.driver) as typeof import("better-sqlite3");
  const sql = workerData.sql as Record<"upsert" | "update" | "remove", string>;
  const port = parentPort!;
  // A failure to open is thrown: the main thread sees it as the worker's error event.
  const db = new Database(workerData.file as string, { fileMustExist: true });
  db.pragma("busy_timeout = 5000");
  // Each commit is fsynced (WAL + FULL): once acknowledged it survives a machine crash too.
  db.pragma("synchronous = FULL");
  const statements = { upsert: db.prepare(sql.upsert), update: db.prepare(sql.update), remove: db.prepare(sql.remove) };
  const apply = db.transaction((rows: Array<{ op: "upsert" | "update" | "remove"; params: Record<string, unknown> }>) => {
    for (const row of rows) statements[row.op].run(row.params);
  });
  const describe = (err: unknown) => (err instanceof Error ? err.message : String(err));
  port.on("message", (message: { type: string; id: number; rows: never; flag: SharedArrayBuffer; message: SharedArrayBuffer }) => {
    if (message.type === "batch") {
      try {
        apply(message.rows);
        port.postMessage({ type: "done", id: message.id });
      } catch (err) {
        port.postMessage({ type: "failed", id: message.id, message: describe(err) });
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
        error ||= describe(err);
      }
      if (error) new Uint8Array(message.message).set(Buffer.from(error, "utf8").subarray(0, message.message.byteLength));
      const state = new Int32Array(message.flag);
      Atomics.store(state, 0, error ? 2 : 1);
      Atomics.notify(state, 0);
      port.close();
    }
  });
}
