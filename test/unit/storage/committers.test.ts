import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import Database from "better-sqlite3";
import { ChangeFeed } from "../../../src/domain/change-feed";
import { ManualClock } from "../../../src/domain/clock";
import { ErrorCode } from "../../../src/domain/errors";
import { StatusView } from "../../../src/domain/key-view";
import type { ChangeCause, KeyStatus, PoolEvent } from "../../../src/domain/types";
import { WorkerCommitter } from "../../../src/storage/committers";
import { GroupCommitWriter } from "../../../src/storage/group-commit";
import { SqliteStateStore } from "../../../src/storage/sqlite-store";
import type { StoreWrite } from "../../../src/storage/state-store";
import { keyStatus } from "./fixtures";

let dir: string;
let file: string;
const committers: WorkerCommitter[] = [];

beforeEach(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), "keypool-worker-"));
  file = path.join(dir, "state.db");
  SqliteStateStore.open(file).close();
});
afterEach(() => {
  for (const c of committers.splice(0)) {
    try {
      c.closeWith([]);
    } catch {
      // a test broke it on purpose
    }
  }
  fs.rmSync(dir, { recursive: true, force: true });
});

function open(location = file): WorkerCommitter {
  const committer = new WorkerCommitter(location);
  committers.push(committer);
  return committer;
}

const upsert = (keyHash: string, promptCount = 0): StoreWrite => ({
  kind: "upsert",
  status: keyStatus(keyHash, { promptCount }),
  secret: `sk-${keyHash}`,
  origin: "runtime",
  removedAt: 0,
});

const commit = (c: WorkerCommitter, writes: StoreWrite[]) =>
  new Promise<void>((resolve, reject) => c.commit(writes, (err) => (err ? reject(err) : resolve())));

/** What another connection reads from the file right now. */
function onDisk(): Map<string, number> {
  const db = new Database(file, { readonly: true });
  try {
    const rows = db.prepare("SELECT key_hash, status FROM keys").all() as Array<{ key_hash: string; status: string }>;
    return new Map(rows.map((r) => [r.key_hash, (JSON.parse(r.status) as KeyStatus).promptCount]));
  } finally {
    db.close();
  }
}

const soft = (keyHash: string, leaseCount: number): StoreWrite => ({
  kind: "soft",
  keyHash,
  soft: { lastUsed: 1_000 + leaseCount, leaseCount, holdUntil: 2_000 + leaseCount },
});

/** key_soft as another connection reads it: lease count by key. */
function softOnDisk(): Map<string, number> {
  const db = new Database(file, { readonly: true });
  try {
    const rows = db.prepare("SELECT key_hash, last_used, lease_count, hold_until FROM key_soft").all() as Array<{
      key_hash: string;
      last_used: number;
      lease_count: number;
      hold_until: number;
    }>;
    // Each row's numbers arrived together, in their order.
    for (const r of rows) expect([r.last_used, r.hold_until]).toEqual([1_000 + r.lease_count, 2_000 + r.lease_count]);
    return new Map(rows.map((r) => [r.key_hash, r.lease_count]));
  } finally {
    db.close();
  }
}

describe("WorkerCommitter", () => {
  it("writes soft rows beside rows, in batches larger than one message, and in the last batch at close", async () => {
    const c = open();
    await commit(c, Array.from({ length: 3_000 }, (_, k) => upsert(`oai-${k}`)));
    // Mixed: 2,500 soft rows (three messages' worth) and 300 rows (two messages' worth).
    const mixed: StoreWrite[] = [];
    for (let k = 0; k < 2_800; k++) mixed.push(k % 28 < 25 ? soft(`oai-${k}`, k + 1) : upsert(`oai-${k}`, 7));
    await commit(c, mixed);
    const written = softOnDisk();
    expect(written.size).toBe(2_500);
    for (let k = 0; k < 2_800; k++) {
      if (k % 28 < 25) expect(written.get(`oai-${k}`)).toBe(k + 1);
      else expect(written.has(`oai-${k}`)).toBe(false);
    }
    expect([...onDisk().values()].filter((p) => p === 7)).toHaveLength(300);
    c.closeWith([soft("oai-2999", 42), upsert("oai-0", 9)]);
    expect(softOnDisk().get("oai-2999")).toBe(42);
    // A row written goes with its soft row.
    expect(softOnDisk().has("oai-0")).toBe(false);
    expect(onDisk().get("oai-0")).toBe(9);
  });

  it("reports a batch done only once another connection can read it", async () => {
    const c = open();
    await commit(c, [upsert("oai-a", 1), upsert("oai-b", 2)]);
    expect(onDisk()).toEqual(new Map([["oai-a", 1], ["oai-b", 2]]));
    await commit(c, [upsert("oai-a", 5)]);
    expect(onDisk().get("oai-a")).toBe(5);
  });

  it("writes the last batch and folds the WAL in before closeWith returns", async () => {
    const c = open();
    await commit(c, [upsert("oai-a", 1)]);
    c.closeWith([upsert("oai-a", 9), upsert("oai-c", 3)]);
    expect(fs.existsSync(`${file}-wal`) ? fs.statSync(`${file}-wal`).size : 0).toBe(0);
    expect(onDisk()).toEqual(new Map([["oai-a", 9], ["oai-c", 3]]));
  });

  it("lets closeWith wait for a batch still on its way, then settles it", async () => {
    const c = open();
    let settled: Error | undefined | "pending" = "pending";
    c.commit([upsert("oai-a", 1)], (err) => (settled = err));
    c.closeWith([upsert("oai-b", 2)]);
    expect(settled).toBeUndefined();
    expect(onDisk()).toEqual(new Map([["oai-a", 1], ["oai-b", 2]]));
  });

  it("reports a failed batch, and a failed last write by throwing", async () => {
    const c = open();
    await commit(c, [upsert("oai-a", 1)]);
    const other = new Database(file);
    other.exec("DROP TABLE keys");
    other.close();
    await expect(commit(c, [upsert("oai-a", 2)])).rejects.toThrow(/no such table: keys/);
    expect(() => c.closeWith([upsert("oai-a", 3)])).toThrow(/the last write to .*state.db failed: no such table: keys/);
  });

  it("writes a batch of several messages in one transaction: all of it, or none of it when a row fails", async () => {
    const c = open();
    await commit(c, [upsert("oai-first", 1)]);
    const batch = Array.from({ length: 600 }, (_, i) => upsert(`oai-${i}`, i + 1));
    const other = new Database(file);
    // The row refused comes in the last of the batch's three messages to the thread.
    other.exec(`CREATE TRIGGER refuse BEFORE INSERT ON keys WHEN NEW.key_hash = 'oai-599' BEGIN SELECT RAISE(ABORT, 'refused by the test'); END`);
    await expect(commit(c, batch)).rejects.toThrow(/refused by the test/);
    expect(onDisk()).toEqual(new Map([["oai-first", 1]]));
    other.exec("DROP TRIGGER refuse");
    other.close();
    await commit(c, batch);
    const rows = onDisk();
    expect(rows.size).toBe(601);
    expect(rows.get("oai-0")).toBe(1);
    expect(rows.get("oai-599")).toBe(600);
  });

  it("fails every commit once its thread cannot open the file", async () => {
    const c = open(path.join(dir, "missing.db"));
    await expect(commit(c, [upsert("oai-a")])).rejects.toThrow(/state writer thread failed/);
    await expect(commit(c, [upsert("oai-a")])).rejects.toThrow(/state writer thread failed/);
    // Closing does not create a file that went missing: it says so.
    expect(() => c.closeWith([upsert("oai-a")])).toThrow(/writer thread failed .*writing directly failed too .*does not exist/);
    expect(fs.existsSync(path.join(dir, "missing.db"))).toBe(false);
  });

  it("writes the last batch itself when the thread is gone, and returns at once", async () => {
    const later = path.join(dir, "later.db");
    const c = open(later);
    await expect(commit(c, [upsert("oai-a")])).rejects.toThrow(/state writer thread failed/);
    SqliteStateStore.open(later).close();
    const started = Date.now();
    c.closeWith([upsert("oai-a", 4)]);
    expect(Date.now() - started).toBeLessThan(2000);
    file = later;
    expect(onDisk()).toEqual(new Map([["oai-a", 4]]));
  });
});

describe("GroupCommitWriter over a WorkerCommitter", () => {
  class Pool {
    readonly changes = new ChangeFeed<PoolEvent>();
    private readonly statuses = new Map<string, KeyStatus>();
    secretOf = (keyHash: string) => `sk-${keyHash}`;
    getKey = (keyHash: string) => this.statuses.get(keyHash);
    softStateOf = (keyHash: string) => {
      const status = this.statuses.get(keyHash);
      return status && { lastUsed: status.lastUsed, leaseCount: status.leaseCount, holdUntil: status.holdUntil };
    };
    usage(keyHash: string, promptCount: number) {
      this.publish("usage", keyStatus(keyHash, { promptCount }));
    }
    add(keyHash: string) {
      this.publish("added", keyStatus(keyHash));
    }
    private publish(cause: ChangeCause, status: KeyStatus) {
      this.statuses.set(status.keyHash, status);
      this.changes.publish({ type: "updated", cause, key: new StatusView(status) });
    }
  }

  it("commits what changes while a batch is on its way as the next batch, and settles each flush after its own changes", async () => {
    const pool = new Pool();
    const writer = new GroupCommitWriter(open(), pool, { clock: new ManualClock() });
    pool.add("oai-a");
    pool.add("oai-b");
    const first = writer.flush();
    // Let the first batch leave for the worker, then change more while it is away.
    await new Promise<void>((resolve) => setImmediate(resolve));
    pool.usage("oai-a", 7);
    const second = writer.flush();
    // Nothing new since `second`: this one waits for the same batch as `second`.
    const third = writer.flush();
    await first;
    await second;
    expect(onDisk().get("oai-a")).toBe(7);
    await third;
    expect(writer.stats.commits).toBe(2);
    writer.close();
  });

  it("commits a batch larger than one message to the thread whole, each key as it is at the commit", async () => {
    const pool = new Pool();
    const writer = new GroupCommitWriter(open(), pool, { clock: new ManualClock() });
    for (let k = 0; k < 1000; k++) pool.add(`oai-${k}`);
    for (let k = 0; k < 1000; k += 3) pool.usage(`oai-${k}`, k);
    await writer.flush();
    expect(writer.stats).toEqual({ commits: 1, keysWritten: 1000 });
    const rows = onDisk();
    expect(rows.size).toBe(1000);
    for (let k = 0; k < 1000; k++) expect(rows.get(`oai-${k}`)).toBe(k % 3 === 0 ? k : 0);
    writer.close();
  });

  it("shares batches among 200 concurrent flushes", async () => {
    const pool = new Pool();
    const writer = new GroupCommitWriter(open(), pool, { clock: new ManualClock() });
    for (let k = 0; k < 10; k++) pool.add(`oai-${k}`);
    await writer.flush();
    const flushes: Array<Promise<void>> = [];
    for (let i = 1; i <= 200; i++) {
      pool.usage(`oai-${i % 10}`, i);
      flushes.push(writer.flush());
      if (i % 50 === 0) await new Promise<void>((resolve) => setImmediate(resolve));
    }
    await Promise.all(flushes);
    expect(writer.stats.commits).toBeLessThanOrEqual(5);
    expect(onDisk().get("oai-0")).toBe(200);
    writer.close();
  });

  it("rejects flushes with UNAVAILABLE when the thread cannot write", async () => {
    const pool = new Pool();
    const errors: Error[] = [];
    const writer = new GroupCommitWriter(open(path.join(dir, "missing.db")), pool, {
      clock: new ManualClock(),
      onError: (e) => errors.push(e),
    });
    pool.add("oai-a");
    await expect(writer.flush()).rejects.toMatchObject({ code: ErrorCode.Unavailable });
    expect(errors).toHaveLength(1);
    expect(() => writer.close()).toThrow(/could not be saved to the state file .*writer thread failed/);
  });
});
