/**
 * The state writer thread (WorkerCommitter in committers.ts starts it): its own SQLite
 * connection commits each batch, so the fsync happens off the event loop. It reports how it
 * ended in the control block (commit-protocol.ts): closed, failed to close, or failed to start.
 */
import { parentPort, workerData } from "node:worker_threads";
import Database from "better-sqlite3";
import { CLOSE_FAILED, CLOSED, THREAD_FAILED, type CommitWorkerData, type FromWorker, type ToWorker } from "./commit-protocol";
import type { KeyRow } from "./key-rows";
import { checkpointWal, prepareKeyRowStatements, useWriterPragmas } from "./sqlite-connection";

const { file, control } = workerData as CommitWorkerData;
const state = new Int32Array(control, 0, 1);
const port = parentPort!;

function report(code: number, text: string): void {
  if (text) {
    const bytes = Buffer.from(text, "utf8").subarray(0, control.byteLength - 4);
    new Uint8Array(control, 4).set(bytes);
  }
  Atomics.store(state, 0, code);
  Atomics.notify(state, 0);
}

const describe = (err: unknown) => (err instanceof Error && err.message) || String(err);

let db: Database.Database;
let apply: (rows: KeyRow[]) => void;
try {
  db = new Database(file, { fileMustExist: true });
  useWriterPragmas(db);
  const runRow = prepareKeyRowStatements(db);
  apply = db.transaction((rows: KeyRow[]) => {
    for (const row of rows) runRow(row);
  });
} catch (err) {
  report(THREAD_FAILED, describe(err));
  throw err;
}

function reply(message: FromWorker): void {
  port.postMessage(message);
}

port.on("message", (message: ToWorker) => {
  if (message.type === "batch") {
    try {
      apply(message.rows);
      reply({ type: "done", id: message.id });
    } catch (err) {
      reply({ type: "failed", id: message.id, message: describe(err) });
    }
    return;
  }
  let error = "";
  try {
    apply(message.rows);
    checkpointWal(db);
  } catch (err) {
    error = describe(err) || "unknown error";
  }
  try {
    db.close();
  } catch (err) {
    error = error || describe(err);
  }
  report(error ? CLOSE_FAILED : CLOSED, error);
  port.close();
});
