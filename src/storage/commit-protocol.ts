/**
 * The messages between WorkerCommitter (committers.ts) and its thread (commit-worker.ts), and the
 * shared control block in which the thread reports how it ended: readable even while the main
 * thread blocks in Atomics.wait, where messages cannot arrive.
 */
import type { KeyRow } from "./key-rows";

export interface CommitWorkerData {
  /** The state file, existing and migrated. */
  file: string;
  /** CONTROL_BYTES: an Int32 state, then a UTF-8 message. */
  control: SharedArrayBuffer;
}

export type ToWorker = { type: "batch"; id: number; rows: KeyRow[] } | { type: "close"; rows: KeyRow[] };
export type FromWorker = { type: "done"; id: number } | { type: "failed"; id: number; message: string };

export const CONTROL_BYTES = 4 + 2048;
export const RUNNING = 0;
export const CLOSED = 1;
export const CLOSE_FAILED = 2;
export const THREAD_FAILED = 3;
