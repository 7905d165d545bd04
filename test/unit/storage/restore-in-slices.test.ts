/**
 * A start reads, plans and restores the stored rows a slice at a time (durable-state.ts): with more
 * rows than one slice, every rule of restore.ts still holds for every row, and a damaged row after
 * the first slices still stops the start with the file named and the file released.
 */
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import Database from "better-sqlite3";
import { ManualClock } from "../../../src/domain/clock";
import { hashKey } from "../../../src/domain/key-hash";
import { KeyPool } from "../../../src/domain/key-pool";
import type { KeySpec } from "../../../src/domain/types";
import { openDurableState, type DurableState } from "../../../src/storage/durable-state";
import { RecordingLogger } from "./fixtures";
import { SqliteStateStore } from "../../../src/storage/sqlite-store";
import { StateFileError } from "../../../src/storage/state-file-error";
import type { StoreWrite } from "../../../src/storage/state-store";

/** More than two slices of RESTORE_SLICE (4,096) rows. */
const STORED = 10_000;
const spec = (i: number): KeySpec => ({ provider: "openai", key: `sk-stored-${String(i).padStart(6, "0")}` });
const hashOf = (s: KeySpec) => hashKey(s.provider, s.key.trim(), s.organizationId ?? "");

let dir: string;
let file: string;
const clock = new ManualClock();
const opened: Array<{ pool: KeyPool; state?: DurableState }> = [];

beforeEach(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), "keypool-slices-"));
  file = path.join(dir, "keypool.db");
});
afterEach(() => {
  for (const { pool, state } of opened.splice(0)) {
    pool.close();
    state?.close();
  }
  fs.rmSync(dir, { recursive: true, force: true });
});

/**
 * A state file in which keys 0..STORED-1 have rows, each leased once and counted (as the state
 * writer writes a key's first change); `runtime` of them were added at run time, `removed` were
 * removed with RemoveKey.
 */
function writeRows(options: { runtime: Set<number>; removed: Set<number> }): void {
  const pool = new KeyPool({ clock, reuseDelayMs: 0 });
  const specs = Array.from({ length: STORED }, (_, i) => spec(i));
  pool.addKeys(specs);
  const store = SqliteStateStore.open(file);
  try {
    const writes: StoreWrite[] = [];
    specs.forEach((s, i) => {
      const keyHash = hashOf(s);
      pool.incrementUsage({ keyHash, model: "gpt-4o", inputTokens: i, outputTokens: 1 });
      writes.push({
        kind: "upsert",
        status: pool.getKey(keyHash)!,
        secret: s.key,
        origin: options.runtime.has(i) ? "runtime" : "config",
        removedAt: options.removed.has(i) ? 1_000 : 0,
      });
    });
    store.writeBatch(writes);
  } finally {
    store.close();
    pool.close();
  }
}

function start(configured: KeySpec[], logger = new RecordingLogger()) {
  const pool = new KeyPool({ clock });
  const handle: { pool: KeyPool; state?: DurableState } = { pool };
  opened.push(handle);
  handle.state = openDurableState({ location: file, pool, configured, clock, logger });
  return { pool, logger };
}

describe("a start with more stored rows than one slice", () => {
  it("restores every stored key by the rules of restore.ts, whatever slice its row falls in", () => {
    // Keys spread over every slice: some left the configuration, some were added at run time
    // (kept though not configured), some were removed (kept out though configured).
    const runtime = new Set([5, 4_500, 9_990]);
    const removed = new Set([7, 6_000, 9_999]);
    writeRows({ runtime, removed });
    const left = new Set([1, 4_200, 8_888]);
    const configured: KeySpec[] = [];
    for (let i = 0; i < STORED; i++) if (!left.has(i) && !runtime.has(i)) configured.push(spec(i));
    const fresh = [spec(STORED), spec(STORED + 1)];
    configured.push(...fresh, spec(3)); // spec(3) twice: a duplicate

    const { pool, logger } = start(configured);

    const expected = new Set<string>();
    for (let i = 0; i < STORED; i++) if (!left.has(i) && !removed.has(i)) expected.add(hashOf(spec(i)));
    for (const s of fresh) expected.add(hashOf(s));
    expect(pool.size).toBe(expected.size);
    expect(new Set(pool.listKeys().map((k) => k.keyHash))).toEqual(expected);
    // Stored keys keep their stored state; the new ones start fresh.
    for (const i of [0, 5, 4_095, 4_096, 6_001, 9_990, 9_998]) {
      const status = pool.getKey(hashOf(spec(i)))!;
      expect(status.usage["gpt4o"]).toEqual({ inputTokens: i, outputTokens: 1, prompts: 1 });
      expect(status.promptCount).toBe(1);
    }
    expect(pool.getKey(hashOf(fresh[0]))!.promptCount).toBe(0);

    const openedLine = logger.lines.find((l) => l.message === "state file opened")!;
    expect(openedLine.fields).toMatchObject({ stored: STORED, restored: STORED - left.size - removed.size, added: fresh.length, leftConfiguration: left.size });
    const leftLogged = logger.lines.filter((l) => l.message.startsWith("stored key is no longer configured")).map((l) => l.fields.keyHash);
    expect(new Set(leftLogged)).toEqual(new Set([...left].map((i) => hashOf(spec(i)))));
    const removedLogged = logger.lines.filter((l) => l.message.startsWith("configured key was removed")).map((l) => l.fields.keyHash);
    expect(new Set(removedLogged)).toEqual(new Set([...removed].map((i) => hashOf(spec(i)))));
    expect(logger.lines.find((l) => l.message.startsWith("duplicate keys"))?.fields).toEqual({ duplicates: 1 });
  });

  it("gives each key leased since its row its soft row's fields, whatever slice it falls in", () => {
    writeRows({ runtime: new Set(), removed: new Set() });
    const leased = [0, 4_095, 4_096, 8_191, 8_192, 9_999];
    const store = SqliteStateStore.open(file);
    store.writeBatch(leased.map((i) => ({ kind: "soft", keyHash: hashOf(spec(i)), soft: { lastUsed: 100_000 + i, leaseCount: 2 + i, holdUntil: 200_000 + i } })));
    store.close();

    const { pool } = start(Array.from({ length: STORED }, (_, i) => spec(i)));
    for (const i of leased) {
      expect(pool.getKey(hashOf(spec(i)))).toMatchObject({ lastUsed: 100_000 + i, leaseCount: 2 + i, holdUntil: 200_000 + i, readyAt: 200_000 + i, promptCount: 1 });
    }
    for (const i of [1, 4_097, 9_998]) expect(pool.getKey(hashOf(spec(i)))).toMatchObject({ leaseCount: 0, holdUntil: 0, promptCount: 1 });
  });

  it("stops at a damaged row after the first slices, naming the file, and releases it", () => {
    writeRows({ runtime: new Set(), removed: new Set() });
    const db = new Database(file);
    const damaged = db.prepare("SELECT key_hash FROM keys ORDER BY key_hash LIMIT 1 OFFSET 9000").get() as { key_hash: string };
    db.prepare("UPDATE keys SET status = '{not json' WHERE key_hash = ?").run(damaged.key_hash);
    db.pragma("wal_checkpoint(TRUNCATE)");
    db.close();
    const configured = Array.from({ length: STORED }, (_, i) => spec(i));

    expect(() => start(configured)).toThrow(StateFileError);
    expect(() => start(configured)).toThrow(new RegExp(`${damaged.key_hash} is not valid JSON`));
    // Released: the file is not held by the failed starts (a lock would say "locked by").
    expect(() => start(configured)).not.toThrow(/lock/);
  });
});

describe("a start on a state file with no rows", () => {
  it("adds every configured key once, warns of the duplicates and writes no row", () => {
    const configured = [spec(1), spec(2), { provider: "openai", key: ` ${spec(1).key} ` } as KeySpec, spec(3)];
    const { pool, logger } = start(configured);
    expect(new Set(pool.listKeys().map((k) => k.keyHash))).toEqual(new Set([1, 2, 3].map((i) => hashOf(spec(i)))));
    expect(logger.lines.find((l) => l.message.startsWith("duplicate keys"))?.fields).toEqual({ duplicates: 1 });
    expect(logger.lines.find((l) => l.message === "state file opened")!.fields).toMatchObject({ stored: 0, restored: 0, added: 3 });
    const reader = new Database(file, { readonly: true });
    try {
      expect((reader.prepare("SELECT COUNT(*) AS n FROM keys").get() as { n: number }).n).toBe(0);
    } finally {
      reader.close();
    }
  });
});
