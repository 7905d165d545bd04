/**
 * The state writer thread (WorkerCommitter in committers.ts starts it): its own SQLite
 * connection commits each batch, so the fsync happens off the event loop. It reports how it
 * ended in the control block (commit-protocol.ts): closed, failed to close, or failed to start.
 */
import { parentPort, workerData } from "node:worker_threads";
import Database from "better-sqlite3";
import { CLOSE_FAILED, CLOSED, THREAD_FAILED, type CommitWorkerData, type FromWorker, type ToWorker } from "./commit-protocol";
import type { KeyRow, SoftRows } from "./key-rows";
import { checkpointWal, prepareRowWriter, useWriterPragmas, type RowWriter } from "./sqlite-connection";

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
let writer: RowWriter;
let apply: (rows: KeyRow[], soft: SoftRows) => void;
let begin: Database.Statement;
let commit: Database.Statement;
let rollback: Database.Statement;
try {
  db = new Database(file, { fileMustExist: true });
  useWriterPragmas(db);
  writer = prepareRowWriter(db);
  apply = db.transaction((rows: KeyRow[], soft: SoftRows) => {
    for (const row of rows) writer.row(row);
    writer.softRows(soft);
  });
  begin = db.prepare("BEGIN");
  commit = db.prepare("COMMIT");
  rollback = db.prepare("ROLLBACK");
} catch (err) {
  report(THREAD_FAILED, describe(err));
  throw err;
}

function reply(message: FromWorker): void {
  port.postMessage(message);
}

/**
 * The batch whose parts are being written: its transaction is open from its first part to its
 * last, and each part's rows are written as they arrive (none is kept for the commit). A part
 * that fails rolls the batch back; its later parts are skipped and its last one answers failed.
 */
let open: { id: number; failed: string } | undefined;

function endOpen(): void {
  if (open && open.failed === "" && db.inTransaction) rollback.run();
  open = undefined;
}

function writePart(id: number, rows: KeyRow[], soft: SoftRows): void {
  if (open?.id !== id) {
    // A batch cut short (never possible from WorkerCommitter, which posts a batch in one turn) is dropped.
    endOpen();
    open = { id, failed: "" };
    try {
      begin.run();
    } catch (err) {
      open.failed = describe(err) || "unknown error";
      return;
    }
  }
  if (open.failed !== "") return;
  try {
    for (const row of rows) writer.row(row);
    writer.softRows(soft);
  } catch (err) {
    open.failed = describe(err) || "unknown error";
    if (db.inTransaction) rollback.run();
  }
}

port.on("message", (message: ToWorker) => {
  if (message.type === "rows") {
    writePart(message.id, message.rows, message.soft);
    return;
  }
  if (message.type === "batch") {
    writePart(message.id, message.rows, message.soft);
    const batch = open!;
    open = undefined;
    if (batch.failed === "") {
      try {
        commit.run();
      } catch (err) {
        batch.failed = describe(err) || "unknown error";
        if (db.inTransaction) rollback.run();
      }
    }
    reply(batch.failed === "" ? { type: "done", id: message.id } : { type: "failed", id: message.id, message: batch.failed });
    return;
  }
  let error = "";
  try {
    endOpen();
    apply(message.rows, message.soft);
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
