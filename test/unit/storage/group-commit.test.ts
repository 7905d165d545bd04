import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { ChangeFeed } from "../../../src/domain/change-feed";
import { ManualClock } from "../../../src/domain/clock";
import { ErrorCode, PoolError } from "../../../src/domain/errors";
import { StatusView } from "../../../src/domain/key-view";
import type { ChangeCause, KeySoftState, KeyStatus, PoolEvent } from "../../../src/domain/types";
import type { BatchCommitter } from "../../../src/storage/committers";
import { GroupCommitWriter, type ObservedPool } from "../../../src/storage/group-commit";
import { SqliteStateStore } from "../../../src/storage/sqlite-store";
import type { StateStore, StoreWrite } from "../../../src/storage/state-store";
import { keyStatus } from "./fixtures";

/** Just enough of a pool: a feed, secrets, and the current statuses. */
class FakePool implements ObservedPool {
  readonly changes = new ChangeFeed<PoolEvent>();
  readonly keys = new Map<string, { status: KeyStatus; secret: string }>();
  /** Keys read by the writer: a status, or the soft state alone. */
  reads = 0;
  /** Of those, statuses made. */
  statuses = 0;

  add(keyHash: string, secret = `sk-${keyHash}`): void {
    const status = keyStatus(keyHash);
    this.keys.set(keyHash, { status, secret });
    this.changes.publish({ type: "updated", cause: "added", key: new StatusView(status) });
  }

  change(keyHash: string, cause: ChangeCause, extra: Partial<KeyStatus>): void {
    const entry = this.keys.get(keyHash)!;
    entry.status = { ...entry.status, ...extra };
    this.changes.publish({ type: "updated", cause, key: new StatusView(entry.status) });
  }

  remove(keyHash: string): void {
    const entry = this.keys.get(keyHash)!;
    this.keys.delete(keyHash);
    const { provider, modelFamilies } = entry.status;
    this.changes.publish({ type: "removed", keyHash, provider, modelFamilies, key: new StatusView(entry.status) });
  }

  secretOf(keyHash: string): string | undefined {
    return this.keys.get(keyHash)?.secret;
  }

  getKey(keyHash: string): KeyStatus | undefined {
    this.reads++;
    this.statuses++;
    return this.keys.get(keyHash)?.status;
  }

  softStateOf(keyHash: string): KeySoftState | undefined {
    this.reads++;
    const status = this.keys.get(keyHash)?.status;
    return status && { lastUsed: status.lastUsed, leaseCount: status.leaseCount, holdUntil: status.holdUntil };
  }
}

/** What a batch wrote of each key: its whole row's field, or its soft row's. */
function written(batch: StoreWrite[], field: "lastUsed" | "leaseCount"): Array<[string, string, number]> {
  return batch.map((w) =>
    w.kind === "soft" ? ["soft", w.keyHash, w.soft[field]] : w.kind === "upsert" ? ["row", w.status.keyHash, w.status[field]] : ["remove", w.keyHash, 0],
  );
}

/** Records every batch; can be told to fail. */
class RecordingStore implements StateStore {
  readonly location = "/tmp/recording.db";
  readonly batches: StoreWrite[][] = [];
  failNext = 0;

  writeBatch(writes: readonly StoreWrite[]): void {
    if (this.failNext > 0) {
      this.failNext -= 1;
      throw new Error("SQLITE_FULL: database or disk is full");
    }
    this.batches.push([...writes]);
  }

  close(): void {}
}

/** Lets pending setImmediate callbacks (the scheduled commit) run. */
const turn = () => new Promise<void>((resolve) => setImmediate(resolve));

describe("GroupCommitWriter", () => {
  let pool: FakePool;
  let store: RecordingStore;
  let clock: ManualClock;
  let writer: GroupCommitWriter;

  beforeEach(() => {
    pool = new FakePool();
    store = new RecordingStore();
    clock = new ManualClock();
    writer = new GroupCommitWriter(store, pool, { clock, lazyMs: 1000 });
  });

  it("resolves flush only once the change made before it is written", async () => {
    pool.add("oai-a");
    let settled = false;
    const flushed = writer.flush().then(() => (settled = true));
    expect(store.batches).toHaveLength(0);
    expect(settled).toBe(false);
    await flushed;
    expect(store.batches).toHaveLength(1);
    expect(store.batches[0]).toEqual([
      { kind: "upsert", status: keyStatus("oai-a"), secret: "sk-oai-a", origin: "runtime", removedAt: 0 },
    ]);
  });

  it("shares one commit among many changes and many concurrent flushes, one row per key", async () => {
    pool.add("oai-a");
    pool.add("oai-b");
    await writer.flush();
    store.batches.length = 0;
    const flushes: Array<Promise<void>> = [];
    for (let i = 1; i <= 100; i++) {
      pool.change(i % 2 ? "oai-a" : "oai-b", "usage", { promptCount: i });
      flushes.push(writer.flush());
    }
    await Promise.all(flushes);
    expect(writer.stats.commits).toBe(2);
    expect(store.batches).toHaveLength(1);
    const rows = store.batches[0]!.map((w) => (w.kind === "upsert" ? [w.status.keyHash, w.status.promptCount] : w));
    // The latest state of each key, once.
    expect(rows.sort()).toEqual([
      ["oai-a", 99],
      ["oai-b", 100],
    ]);
  });

  it("keeps no status per changed key: reads each one once, at the commit, as it is then", async () => {
    pool.add("oai-a");
    pool.add("oai-b");
    await writer.flush();
    store.batches.length = 0;
    pool.reads = 0;
    for (let i = 1; i <= 500; i++) pool.change(i % 2 ? "oai-a" : "oai-b", "leased", { lastUsed: i });
    expect(pool.reads).toBe(0);
    expect(writer.pending).toBe(2);
    clock.advance(1000);
    await turn();
    expect(pool.reads).toBe(2);
    expect(written(store.batches[0]!, "lastUsed")).toEqual([
      ["soft", "oai-a", 499],
      ["soft", "oai-b", 500],
    ]);
  });

  it("writes a key changed only by leases since its row as a soft row, without making its status; any other change writes the row", async () => {
    pool.add("oai-a");
    pool.add("oai-b");
    pool.add("oai-c");
    await writer.flush();
    pool.statuses = 0;
    pool.change("oai-a", "leased", { lastUsed: 10, leaseCount: 1, holdUntil: 15, inFlight: 1 });
    pool.change("oai-a", "lease_ended", { inFlight: 0 });
    // A lease, then a report: the report's change is written, with the lease's.
    pool.change("oai-b", "leased", { lastUsed: 11, leaseCount: 1 });
    pool.change("oai-b", "reported", { cooldownUntil: 99 });
    // A report, then a lease: still the whole row.
    pool.change("oai-c", "usage", { promptCount: 1 });
    pool.change("oai-c", "leased", { lastUsed: 12, leaseCount: 1 });
    await writer.flush();
    const batch = store.batches[1]!;
    expect(batch).toEqual([
      { kind: "soft", keyHash: "oai-a", soft: { lastUsed: 10, leaseCount: 1, holdUntil: 15 } },
      { kind: "upsert", status: keyStatus("oai-b", { lastUsed: 11, leaseCount: 1, cooldownUntil: 99 }), secret: "sk-oai-b", origin: undefined, removedAt: 0 },
      { kind: "upsert", status: keyStatus("oai-c", { promptCount: 1, lastUsed: 12, leaseCount: 1 }), secret: "sk-oai-c", origin: undefined, removedAt: 0 },
    ]);
    expect(pool.statuses).toBe(2);
  });

  it("writes the whole row of a key it was told has none, at its first lease; soft rows after", async () => {
    pool = new FakePool();
    pool.keys.set("oai-new", { status: keyStatus("oai-new"), secret: "sk-oai-new" });
    writer = new GroupCommitWriter(store, pool, { clock, unstored: ["oai-new"] });
    pool.change("oai-new", "leased", { lastUsed: 5, leaseCount: 1 });
    await writer.flush();
    pool.change("oai-new", "leased", { lastUsed: 6, leaseCount: 2 });
    await writer.flush();
    expect(store.batches.map((b) => written(b, "leaseCount"))).toEqual([[["row", "oai-new", 1]], [["soft", "oai-new", 2]]]);
  });

  it("writes the whole row again after a failed first write, even if the key was only leased since", async () => {
    pool = new FakePool();
    pool.keys.set("oai-new", { status: keyStatus("oai-new"), secret: "sk-oai-new" });
    writer = new GroupCommitWriter(store, pool, { clock, unstored: ["oai-new"] });
    pool.change("oai-new", "leased", { lastUsed: 5, leaseCount: 1 });
    store.failNext = 1;
    await expect(writer.flush()).rejects.toMatchObject({ code: ErrorCode.Unavailable });
    await writer.flush();
    pool.change("oai-new", "leased", { lastUsed: 6, leaseCount: 2 });
    await writer.flush();
    expect(store.batches.map((b) => written(b, "leaseCount"))).toEqual([[["row", "oai-new", 1]], [["soft", "oai-new", 2]]]);
  });

  it("keeps an unwritten hard change hard (and a new key's origin) when its commit fails and the key changes again meanwhile", async () => {
    // A committer that answers when told, as the writer thread does.
    const commits: Array<{ writes: StoreWrite[]; done: (err?: Error) => void }> = [];
    const committer: BatchCommitter = {
      location: "test",
      commit: (writes, done) => commits.push({ writes: [...writes], done }),
      closeWith: (writes) => commits.push({ writes, done: () => {} }),
    };
    writer = new GroupCommitWriter(committer, pool, { clock });
    pool.add("oai-a");
    pool.add("oai-b");
    await turn();
    expect(commits).toHaveLength(1);
    commits[0]!.done();
    pool.change("oai-a", "usage", { promptCount: 1 });
    pool.add("oai-c");
    await turn();
    expect(commits).toHaveLength(2);
    // While that commit is on its way: leases of A, a usage of C.
    pool.change("oai-a", "leased", { lastUsed: 7 });
    pool.change("oai-c", "usage", { promptCount: 3 });
    commits[1]!.done(new Error("SQLITE_IOERR: disk I/O error"));
    const flushed = writer.flush();
    await turn();
    expect(commits).toHaveLength(3);
    const retry = commits[2]!.writes;
    expect(retry).toEqual([
      { kind: "upsert", status: keyStatus("oai-a", { promptCount: 1, lastUsed: 7 }), secret: "sk-oai-a", origin: undefined, removedAt: 0 },
      { kind: "upsert", status: keyStatus("oai-c", { promptCount: 3 }), secret: "sk-oai-c", origin: "runtime", removedAt: 0 },
    ]);
    commits[2]!.done();
    await flushed;
  });

  it("after a failed commit, writes each key as it is at the next one (changes since included)", async () => {
    pool.add("oai-a");
    await writer.flush();
    store.failNext = 1;
    pool.change("oai-a", "usage", { promptCount: 1 });
    await expect(writer.flush()).rejects.toMatchObject({ code: ErrorCode.Unavailable });
    pool.change("oai-a", "leased", { lastUsed: 9 });
    pool.add("oai-b");
    await writer.flush();
    const last = store.batches[store.batches.length - 1]!;
    expect(last.map((w) => (w.kind === "upsert" ? [w.status.keyHash, w.status.promptCount, w.status.lastUsed] : w)).sort()).toEqual([
      ["oai-a", 1, 9],
      ["oai-b", 0, 0],
    ]);
  });

  it("answers flush at once when nothing changed", async () => {
    await writer.flush();
    expect(store.batches).toHaveLength(0);
  });

  it("commits a change nobody flushes on the next turn (reports, revocations)", async () => {
    pool.add("oai-a");
    await writer.flush();
    pool.change("oai-a", "revoked", { state: "revoked", stateReason: "401" });
    await turn();
    expect(store.batches).toHaveLength(2);
    expect(store.batches[1]![0]).toMatchObject({ kind: "upsert", status: { state: "revoked" } });
  });

  it("writes soft state (a lease) lazily: with the next commit or after lazyMs", async () => {
    pool.add("oai-a");
    await writer.flush();
    pool.change("oai-a", "leased", { lastUsed: 123, inFlight: 1 });
    await turn();
    await turn();
    expect(store.batches).toHaveLength(1);
    expect(writer.pending).toBe(1);
    clock.advance(999);
    await turn();
    expect(store.batches).toHaveLength(1);
    clock.advance(1);
    await turn();
    expect(store.batches).toHaveLength(2);
    expect(store.batches[1]![0]).toMatchObject({ kind: "soft", keyHash: "oai-a", soft: { lastUsed: 123 } });
    expect(writer.pending).toBe(0);
  });

  it("makes a flush cover soft state changed before it", async () => {
    pool.add("oai-a");
    await writer.flush();
    pool.change("oai-a", "leased", { lastUsed: 5 });
    await writer.flush();
    expect(store.batches[1]![0]).toMatchObject({ kind: "soft", soft: { lastUsed: 5 } });
  });

  it("records a removal with the key's last state and keeps a just-added key's secret", async () => {
    pool.add("oai-a");
    await writer.flush();
    clock.advance(7000);
    const at = clock.now();
    pool.remove("oai-a");
    pool.add("oai-b");
    pool.change("oai-b", "usage", { promptCount: 1 });
    pool.remove("oai-b");
    await writer.flush();
    expect(store.batches[1]).toEqual([
      { kind: "remove", keyHash: "oai-a", provider: "openai", modelFamilies: ["turbo", "gpt4"], removedAt: at },
      { kind: "upsert", status: keyStatus("oai-b", { promptCount: 1 }), secret: "sk-oai-b", origin: "runtime", removedAt: at },
    ]);
  });

  it("rejects the waiting flushes with UNAVAILABLE when the write fails, and keeps the change for the next", async () => {
    const errors: Error[] = [];
    pool = new FakePool();
    writer = new GroupCommitWriter(store, pool, { clock, onError: (e) => errors.push(e) });
    pool.add("oai-a", "sk-very-secret");
    store.failNext = 1;
    const failed = writer.flush();
    await expect(failed).rejects.toBeInstanceOf(PoolError);
    const err = (await failed.catch((e: PoolError) => e)) as PoolError;
    expect(err.code).toBe(ErrorCode.Unavailable);
    expect(err.message).toMatch(/could not be saved to the state file \(SQLITE_FULL/);
    expect(err.message).not.toContain("/tmp/recording.db");
    expect(err.message).not.toContain("sk-very-secret");
    expect(errors).toHaveLength(1);
    expect(writer.pending).toBe(1);
    await writer.flush();
    expect(store.batches).toEqual([
      [{ kind: "upsert", status: keyStatus("oai-a"), secret: "sk-very-secret", origin: "runtime", removedAt: 0 }],
    ]);
  });

  it("writes every pending change, soft state included, on close, and only those; then refuses flushes", async () => {
    pool.add("oai-a");
    pool.add("oai-b");
    pool.add("oai-c");
    await writer.flush();
    pool.change("oai-a", "leased", { lastUsed: 66, inFlight: 1 });
    pool.change("oai-b", "lease_ended", { inFlight: 0, lastUsed: 77 });
    writer.close();
    const last = store.batches[store.batches.length - 1]!;
    expect(written(last, "lastUsed")).toEqual([
      ["soft", "oai-a", 66],
      ["soft", "oai-b", 77],
    ]);
    await expect(writer.flush()).rejects.toMatchObject({ code: ErrorCode.Unavailable });
    // Closed: the feed is no longer listened to.
    expect(pool.changes.size).toBe(0);
  });
});

describe("GroupCommitWriter with the SQLite store", () => {
  let dir: string;
  beforeEach(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), "keypool-gc-"));
  });
  afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

  it("has every change made before a resolved flush on file, readable by another connection", async () => {
    const file = path.join(dir, "s.db");
    const store = SqliteStateStore.open(file);
    const pool = new FakePool();
    const writer = new GroupCommitWriter(store, pool, { clock: new ManualClock() });
    pool.add("oai-a");
    for (let i = 1; i <= 50; i++) pool.change("oai-a", "usage", { promptCount: i, usage: { gpt4: { inputTokens: i * 10, outputTokens: i, prompts: i } } });
    await writer.flush();
    // A second connection sees the committed state while the first is still open (WAL).
    const reader = SqliteStateStore.open(file);
    const [row] = [...reader.storedKeys()];
    expect(row!.record).toMatchObject({ key: "sk-oai-a", promptCount: 50, usage: { gpt4: { inputTokens: 500, outputTokens: 50, prompts: 50 } } });
    expect(row!.origin).toBe("runtime");
    reader.close();
    writer.close();
    store.close();
  });
});
