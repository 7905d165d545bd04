/**
 * The messages between WorkerCommitter (committers.ts) and its thread (commit-worker.ts), and the
 * shared control block in which the thread reports how it ended: readable even while the main
 * thread blocks in Atomics.wait, where messages cannot arrive.
 */
import type { KeyRow, SoftRows } from "./key-rows";

export interface CommitWorkerData {
  /** The state file, existing and migrated. */
  file: string;
  /** CONTROL_BYTES: an Int32 state, then a UTF-8 message. */
  control: SharedArrayBuffer;
}

/**
 * A batch may come in parts: "rows" messages, then the "batch" message with the last rows (each
 * part has rows of keys and soft rows of key_soft); the thread writes them all in one
 * transaction, each part as it arrives. So neither thread holds a large batch's rows at once:
 * each part is copied out of the sender's heap as it is posted, and dropped by the thread once
 * written.
 */
export type ToWorker =
  | { type: "rows"; id: number; rows: KeyRow[]; soft: SoftRows }
  | { type: "batch"; id: number; rows: KeyRow[]; soft: SoftRows }
  | { type: "close"; rows: KeyRow[]; soft: SoftRows };
export type FromWorker = { type: "done"; id: number } | { type: "failed"; id: number; message: string };

export const CONTROL_BYTES = 4 + 2048;
export const RUNNING = 0;
export const CLOSED = 1;
export const CLOSE_FAILED = 2;
export const THREAD_FAILED = 3;
