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
import * as fs from "node:fs";
import * as path from "node:path";
import { Worker } from "node:worker_threads";
import { checkSameFile, identityOf, type FileIdentity } from "./file-identity";
import {
  CLOSE_FAILED,
  CLOSED,
  CONTROL_BYTES,
  RUNNING,
  THREAD_FAILED,
  type CommitWorkerData,
  type FromWorker,
  type ToWorker,
} from "./commit-protocol";
import { SoftRowsBuilder, toKeyRow, type KeyRow } from "./key-rows";
import { SqliteStateStore } from "./sqlite-store";
import type { StateStore, StoreWrite } from "./state-store";

export interface BatchCommitter {
  /** For messages: the file path, or a name. */
  readonly location: string;
  /**
   * Starts writing `writes` in one transaction; `done` is called once, with an error if it
   * failed. The writer never starts a batch before the previous one is done. `writes` is read
   * once, in this call: it may make each write as it is read.
   */
  commit(writes: Iterable<StoreWrite>, done: (err?: Error) => void): void;
  /** Writes `writes`, makes the file self-contained and releases it, before returning. Throws on failure. */
  closeWith(writes: StoreWrite[]): void;
}

export class SyncCommitter implements BatchCommitter {
  constructor(private readonly store: StateStore) {}

  get location(): string {
    return this.store.location;
  }

  commit(writes: Iterable<StoreWrite>, done: (err?: Error) => void): void {
    try {
      this.store.writeBatch([...writes]);
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

/** Rows of keys per message to the writer thread (see WorkerCommitter.commit). */
const ROWS_PER_MESSAGE = 256;
/** Soft rows per message: three numbers and a hash each, so more of them. */
const SOFT_ROWS_PER_MESSAGE = 1024;

/**
 * How long close() waits for the thread's last commit (normally milliseconds). Kept below
 * main.ts's exit deadline: timers cannot fire while this thread waits.
 */
const CLOSE_TIMEOUT_MS = 3000;

/**
 * Starts the writer thread from commit-worker's compiled JavaScript beside this file (dist/), or,
 * when this file runs from its TypeScript source (ts-jest, tsx), from commit-worker.ts through
 * tsx's require hook, a development dependency.
 */
function startCommitWorker(workerData: CommitWorkerData): Worker {
  // Loader flags of this process (tsx's --import, --cpu-prof ...) are not the thread's business.
  const options = { workerData, execArgv: [] };
  const compiled = path.join(__dirname, "commit-worker.js");
  if (fs.existsSync(compiled)) return new Worker(compiled, options);
  const source = path.join(__dirname, "commit-worker.ts");
  return new Worker(`require("tsx/cjs"); require(${JSON.stringify(source)});`, { ...options, eval: true });
}

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
    this.worker = startCommitWorker({ file: location, control: this.control });
    // The thread never keeps the process alive: main decides when to stop, and closes us first.
    this.worker.unref();
    this.worker.on("message", (message: FromWorker) => this.onMessage(message));
    this.worker.on("error", (err) => this.fail(new Error(`the state writer thread failed: ${err.message}`)));
    this.worker.on("exit", (code) => {
      if (!this.closed) this.fail(new Error(`the state writer thread stopped (exit code ${code})`));
    });
  }

  /**
   * Posts the batch in parts of at most ROWS_PER_MESSAGE rows and SOFT_ROWS_PER_MESSAGE soft rows,
   * each made (status, row, JSON; or a soft row's numbers) as it is posted: a batch of thousands
   * of keys never has all its rows alive at once on this thread, so a collection during the
   * commit finds little to keep.
   */
  commit(writes: Iterable<StoreWrite>, done: (err?: Error) => void): void {
    if (this.broken) return done(this.broken);
    if (this.pending) return done(new Error("a commit is already on its way"));
    const id = this.nextId++;
    this.pending = { id, done };
    const now = this.now();
    let rows: KeyRow[] = [];
    const soft = new SoftRowsBuilder(SOFT_ROWS_PER_MESSAGE);
    try {
      for (const write of writes) {
        if (write.kind === "soft") soft.add(write);
        else rows.push(toKeyRow(write, now));
        if (rows.length === ROWS_PER_MESSAGE || soft.full) {
          this.worker.postMessage({ type: "rows", id, rows, soft: soft.take() } satisfies ToWorker);
          rows = [];
        }
      }
    } catch (err) {
      // The parts posted are dropped by the thread: the next batch has another id.
      this.pending = undefined;
      return done(err instanceof Error ? err : new Error(String(err)));
    }
    this.worker.postMessage({ type: "batch", id, rows, soft: soft.take() } satisfies ToWorker);
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
      const rows: KeyRow[] = [];
      const soft = new SoftRowsBuilder(writes.length);
      for (const write of writes) {
        if (write.kind === "soft") soft.add(write);
        else rows.push(toKeyRow(write, now));
      }
      this.worker.postMessage({ type: "close", rows, soft: soft.take() } satisfies ToWorker);
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
