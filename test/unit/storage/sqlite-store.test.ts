import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import Database from "better-sqlite3";
import { MIGRATIONS, LATEST_SCHEMA_VERSION } from "../../../src/storage/migrations";
import { SqliteStateStore } from "../../../src/storage/sqlite-store";
import { StateFileError } from "../../../src/storage/state-file-error";
import type { StoreWrite } from "../../../src/storage/state-store";
import { keyStatus } from "./fixtures";

let dir: string;
beforeEach(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), "keypool-store-"));
});
afterEach(() => {
  fs.rmSync(dir, { recursive: true, force: true });
});

function upsert(keyHash: string, extra: Partial<Extract<StoreWrite, { kind: "upsert" }>> = {}): StoreWrite {
  return { kind: "upsert", status: keyStatus(keyHash), secret: `sk-secret-${keyHash}`, origin: "config", removedAt: 0, ...extra };
}

/** Expects `open` to throw a StateFileError whose message names the file and matches `what`. */
function expectRefused(file: string, what: RegExp): StateFileError {
  let caught: unknown;
  try {
    SqliteStateStore.open(file).close();
  } catch (err) {
    caught = err;
  }
  expect(caught).toBeInstanceOf(StateFileError);
  const err = caught as StateFileError;
  expect(err.message).toContain(path.resolve(file));
  expect(err.message).toMatch(what);
  expect(err.message).toMatch(/will not start/);
  return err;
}

describe("SqliteStateStore round trip", () => {
  it("gives back every field of every key, secret included, after a reopen", () => {
    const file = path.join(dir, "state.db");
    const store = SqliteStateStore.open(file);
    const full = keyStatus("oai-0000000000000001", {
      modelFamilies: ["gpt4", "turbo"],
      organizationId: "org-x",
      trial: true,
      state: "revoked",
      stateReason: "upstream said 401",
      readyAt: 1_800_000_005_000,
      holdUntil: 1_800_000_001_000,
      cooldownUntil: 1_800_000_005_000,
      rateLimitedAt: 1_800_000_000_000,
      lastUsed: 1_799_999_999_000,
      lastChecked: 1_799_000_000_000,
      promptCount: 7,
      usage: { gpt4: { inputTokens: 123456789, outputTokens: 987654321, prompts: 5 }, turbo: { inputTokens: 1, outputTokens: 2, prompts: 2 } },
      inFlight: 2,
      leaseCount: 9,
    });
    store.writeBatch([
      { kind: "upsert", status: full, secret: "sk-one", origin: "runtime", removedAt: 0 },
      upsert("ant-0000000000000002"),
    ]);
    store.close();

    const reopened = SqliteStateStore.open(file);
    const loaded = [...reopened.storedKeys()];
    reopened.close();
    expect(loaded).toEqual([
      { record: { ...keyStatus("ant-0000000000000002"), key: "sk-secret-ant-0000000000000002" }, origin: "config", removedAt: 0 },
      { record: { ...full, key: "sk-one" }, origin: "runtime", removedAt: 0 },
    ]);
  });

  it("keeps the stored secret and origin when a write leaves them out, and the latest state wins", () => {
    const store = SqliteStateStore.open(path.join(dir, "s.db"));
    store.writeBatch([upsert("oai-a", { origin: "runtime" })]);
    store.writeBatch([{ kind: "upsert", status: keyStatus("oai-a", { promptCount: 3 }), removedAt: 0 }]);
    const [only] = [...store.storedKeys()];
    store.close();
    expect(only!.record.key).toBe("sk-secret-oai-a");
    expect(only!.origin).toBe("runtime");
    expect(only!.record.promptCount).toBe(3);
  });

  it("marks a removed key removed and keeps its history", () => {
    const store = SqliteStateStore.open(path.join(dir, "s.db"));
    store.writeBatch([upsert("oai-a", { status: keyStatus("oai-a", { promptCount: 42 }) })]);
    store.writeBatch([{ kind: "remove", keyHash: "oai-a", provider: "openai", modelFamilies: ["turbo"], removedAt: 5000 }]);
    const [only] = [...store.storedKeys()];
    store.close();
    expect(only!.removedAt).toBe(5000);
    expect(only!.record.promptCount).toBe(42);
    expect(only!.record.key).toBe("sk-secret-oai-a");
  });

  it("records the removal of a key it never stored, without a secret", () => {
    const store = SqliteStateStore.open(path.join(dir, "s.db"));
    store.writeBatch([{ kind: "remove", keyHash: "oai-b", provider: "openai", modelFamilies: ["gpt4"], origin: "config", removedAt: 6000 }]);
    const [only] = [...store.storedKeys()];
    store.close();
    expect(only).toMatchObject({ origin: "config", removedAt: 6000, record: { keyHash: "oai-b", key: "", modelFamilies: ["gpt4"], promptCount: 0 } });
  });

  it("does not create a row it has no secret for", () => {
    const store = SqliteStateStore.open(path.join(dir, "s.db"));
    store.writeBatch([{ kind: "upsert", status: keyStatus("oai-new"), removedAt: 0 }]);
    expect([...store.storedKeys()]).toEqual([]);
    store.close();
  });

  it("never puts the secret into the status column", () => {
    const file = path.join(dir, "s.db");
    const store = SqliteStateStore.open(file);
    store.writeBatch([{ kind: "upsert", status: { ...keyStatus("oai-a"), key: "sk-hidden" } as never, secret: "sk-hidden", removedAt: 0 }]);
    store.close();
    const db = new Database(file, { readonly: true });
    const row = db.prepare("SELECT status, secret FROM keys").get() as { status: string; secret: string };
    db.close();
    expect(row.secret).toBe("sk-hidden");
    expect(row.status).not.toContain("sk-hidden");
  });

  it("writes a batch atomically: a failing write leaves nothing of the batch", () => {
    const store = SqliteStateStore.open(path.join(dir, "s.db"));
    const bad = upsert("oai-b", { status: { ...keyStatus("oai-b"), provider: null as never } });
    expect(() => store.writeBatch([upsert("oai-a"), bad])).toThrow();
    expect([...store.storedKeys()]).toEqual([]);
    store.close();
  });
});

function soft(keyHash: string, lastUsed: number, leaseCount: number, holdUntil: number): StoreWrite {
  return { kind: "soft", keyHash, soft: { lastUsed, leaseCount, holdUntil } };
}

/** The key_soft table as an operator reads it. */
function softRows(file: string): unknown[] {
  const db = new Database(file, { readonly: true });
  try {
    return db.prepare("SELECT * FROM key_soft ORDER BY key_hash").all();
  } finally {
    db.close();
  }
}

describe("SqliteStateStore soft rows", () => {
  it("gives back a key leased since its row with the lease's fields, the rest of its row as written", () => {
    const file = path.join(dir, "s.db");
    const store = SqliteStateStore.open(file);
    store.writeBatch([upsert("oai-a", { status: keyStatus("oai-a", { promptCount: 4, cooldownUntil: 500, readyAt: 500 }) }), upsert("oai-b")]);
    store.writeBatch([soft("oai-a", 1_000, 3, 1_200)]);
    store.close();
    // Only the lease's fields are in the soft row: no secret.
    expect(softRows(file)).toEqual([{ key_hash: "oai-a", last_used: 1_000, lease_count: 3, hold_until: 1_200 }]);
    const reopened = SqliteStateStore.open(file);
    const [a, b] = [...reopened.storedKeys()];
    reopened.close();
    expect(a!.record).toEqual({
      ...keyStatus("oai-a", { promptCount: 4, cooldownUntil: 500 }),
      lastUsed: 1_000,
      leaseCount: 3,
      holdUntil: 1_200,
      readyAt: 1_200,
      key: "sk-secret-oai-a",
    });
    expect(b!.record).toEqual({ ...keyStatus("oai-b"), key: "sk-secret-oai-b" });
  });

  it("lets a row written after a soft row win: the soft row goes in the same transaction", () => {
    const file = path.join(dir, "s.db");
    const store = SqliteStateStore.open(file);
    store.writeBatch([upsert("oai-a")]);
    store.writeBatch([soft("oai-a", 1_000, 3, 1_200)]);
    // A report after the lease: the whole row, with the lease's fields as they are now.
    store.writeBatch([upsert("oai-a", { status: keyStatus("oai-a", { lastUsed: 1_000, leaseCount: 3, holdUntil: 1_200, cooldownUntil: 9_000, readyAt: 9_000 }) })]);
    expect(softRows(file)).toEqual([]);
    // Leased again later: the soft row is back, newer than the row.
    store.writeBatch([soft("oai-a", 2_000, 4, 2_100)]);
    store.close();
    const reopened = SqliteStateStore.open(file);
    expect([...reopened.storedKeys()][0]!.record).toMatchObject({ lastUsed: 2_000, leaseCount: 4, holdUntil: 2_100, cooldownUntil: 9_000, readyAt: 9_000 });
    reopened.close();
  });

  it("lets a removal win over an earlier soft row too", () => {
    const file = path.join(dir, "s.db");
    const store = SqliteStateStore.open(file);
    store.writeBatch([upsert("oai-a")]);
    store.writeBatch([soft("oai-a", 1_000, 3, 1_200)]);
    const status = keyStatus("oai-a", { lastUsed: 1_000, leaseCount: 3, holdUntil: 1_200, readyAt: 1_200 });
    store.writeBatch([{ kind: "remove", keyHash: "oai-a", provider: "openai", modelFamilies: status.modelFamilies, status, removedAt: 5_000 }]);
    expect(softRows(file)).toEqual([]);
    expect([...store.storedKeys()][0]).toMatchObject({ removedAt: 5_000, record: { lastUsed: 1_000, leaseCount: 3 } });
    store.close();
  });

  it("writes soft rows and rows of one batch in one transaction: a failing write leaves neither", () => {
    const file = path.join(dir, "s.db");
    const store = SqliteStateStore.open(file);
    store.writeBatch([upsert("oai-a")]);
    const bad = upsert("oai-b", { status: { ...keyStatus("oai-b"), provider: null as never } });
    expect(() => store.writeBatch([soft("oai-a", 1_000, 3, 1_200), bad])).toThrow();
    expect(softRows(file)).toEqual([]);
    expect([...store.storedKeys()].map((k) => k.record.keyHash)).toEqual(["oai-a"]);
    store.close();
  });
});

describe("SqliteStateStore file", () => {
  it("creates missing directories and the file with mode 0600, even under a permissive umask", () => {
    const file = path.join(dir, "nested", "deeper", "keypool.db");
    const previous = process.umask(0);
    try {
      const store = SqliteStateStore.open(file);
      store.writeBatch([upsert("oai-a")]);
      expect(fs.statSync(file).mode & 0o777).toBe(0o600);
      // SQLite gives its WAL and shared-memory files the database file's permissions.
      expect(fs.statSync(`${file}-wal`).mode & 0o777).toBe(0o600);
      store.close();
    } finally {
      process.umask(previous);
    }
    expect(fs.statSync(path.dirname(file)).mode & 0o777).toBe(0o700);
  });

  it("takes group and other permissions off an existing state file", () => {
    const file = path.join(dir, "s.db");
    SqliteStateStore.open(file).close();
    fs.chmodSync(file, 0o644);
    SqliteStateStore.open(file).close();
    expect(fs.statSync(file).mode & 0o777).toBe(0o600);
  });

  it("uses the WAL journal with synchronous=FULL and folds the WAL in on close", () => {
    const file = path.join(dir, "s.db");
    const store = SqliteStateStore.open(file);
    store.writeBatch([upsert("oai-a")]);
    store.close();
    const db = new Database(file, { readonly: true });
    expect(db.pragma("journal_mode", { simple: true })).toBe("wal");
    db.close();
    // After a clean close the .db alone is a complete copy.
    expect(fs.existsSync(`${file}-wal`) ? fs.statSync(`${file}-wal`).size : 0).toBe(0);
    const copy = path.join(dir, "copy.db");
    fs.copyFileSync(file, copy);
    const fromCopy = SqliteStateStore.open(copy);
    expect([...fromCopy.storedKeys()].map((k) => k.record.keyHash)).toEqual(["oai-a"]);
    fromCopy.close();
  });
});

describe("SqliteStateStore WAL", () => {
  it("folds the WAL back into the main file while it runs, so the WAL file stays bounded", () => {
    const file = path.join(dir, "wal.db");
    const store = SqliteStateStore.open(file);
    // Rows of about three 4 KiB pages each (an 8 KB secret): 4 batches of 2,000 write about
    // 24,000 pages, more than twice the writer's bound of 10,000 pages of WAL.
    const secret = "s".repeat(8_000);
    const batchPages = 2_000 * 3;
    let largestWal = 0;
    for (let batch = 0; batch < 4; batch++) {
      const writes = Array.from({ length: 2_000 }, (_, i) =>
        upsert(`oai-${String(batch * 2_000 + i).padStart(16, "0")}`, { secret: `${secret}${batch}-${i}` }),
      );
      store.writeBatch(writes);
      largestWal = Math.max(largestWal, fs.statSync(`${file}-wal`).size);
    }
    expect(largestWal).toBeGreaterThan(batchPages * 4096 * 0.9);
    // Never more than the bound plus the batch that crossed it.
    expect(largestWal).toBeLessThanOrEqual((10_000 + batchPages * 1.2) * 4096);
    store.close();
    const reopened = SqliteStateStore.open(file);
    const stored = [...reopened.storedKeys()];
    expect(stored).toHaveLength(8_000);
    expect(stored[7_999]!.record.key).toBe(`${secret}3-1999`);
    reopened.close();
  });
});

describe("SqliteStateStore migrations", () => {
  it("brings a new file to the latest schema version and records each step", () => {
    const file = path.join(dir, "s.db");
    const store = SqliteStateStore.open(file);
    expect(store.schemaVersion()).toBe(LATEST_SCHEMA_VERSION);
    store.close();
    const db = new Database(file, { readonly: true });
    const steps = db.prepare("SELECT version FROM schema_migrations ORDER BY version").all();
    db.close();
    expect(steps).toEqual(MIGRATIONS.map((m) => ({ version: m.version })));
  });

  it("applies only the missing steps to an older file and keeps its data", () => {
    const file = path.join(dir, "s.db");
    const v1 = SqliteStateStore.open(file);
    v1.writeBatch([upsert("oai-a")]);
    v1.close();
    const next = [
      ...MIGRATIONS,
      { version: LATEST_SCHEMA_VERSION + 1, description: "test: a note per key", sql: "ALTER TABLE keys ADD COLUMN note TEXT" },
    ];
    const upgraded = SqliteStateStore.open(file, { migrations: next });
    expect(upgraded.schemaVersion()).toBe(LATEST_SCHEMA_VERSION + 1);
    expect([...upgraded.storedKeys()].map((k) => k.record.key)).toEqual(["sk-secret-oai-a"]);
    upgraded.close();
    // Opening again applies nothing twice (ALTER TABLE would fail if it ran again).
    SqliteStateStore.open(file, { migrations: next }).close();
  });

  it("upgrades a file of schema 1 (no key_soft table), keeping its rows, and writes soft rows after", () => {
    const file = path.join(dir, "s.db");
    // The file the previous keypool made: schema 1's SQL, a row as it wrote them.
    const v1 = new Database(file);
    v1.pragma("journal_mode = WAL");
    v1.exec("CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, description TEXT NOT NULL, applied_at INTEGER NOT NULL)");
    v1.exec(MIGRATIONS.find((m) => m.version === 1)!.sql);
    v1.prepare("INSERT INTO schema_migrations VALUES (1, 'keys', 0)").run();
    v1.prepare("INSERT INTO keys (key_hash, provider, origin, secret, state, status, removed_at, updated_at) VALUES (?, 'openai', 'config', ?, 'active', ?, 0, 0)").run(
      "oai-a",
      "sk-secret-oai-a",
      JSON.stringify(keyStatus("oai-a", { lastUsed: 10, leaseCount: 1 })),
    );
    v1.close();
    const store = SqliteStateStore.open(file);
    expect(store.schemaVersion()).toBe(2);
    expect([...store.storedKeys()][0]!.record).toMatchObject({ key: "sk-secret-oai-a", lastUsed: 10, leaseCount: 1 });
    store.writeBatch([soft("oai-a", 20, 2, 25)]);
    expect([...store.storedKeys()][0]!.record).toMatchObject({ key: "sk-secret-oai-a", lastUsed: 20, leaseCount: 2, holdUntil: 25 });
    store.close();
  });

  it("rolls a failed step back and refuses to start, leaving the file at its version", () => {
    const file = path.join(dir, "s.db");
    SqliteStateStore.open(file).close();
    const broken = [
      ...MIGRATIONS,
      { version: LATEST_SCHEMA_VERSION + 1, description: "test: broken", sql: "CREATE TABLE extra (x); THIS IS NOT SQL" },
    ];
    expect(() => SqliteStateStore.open(file, { migrations: broken })).toThrow(
      new RegExp(`could not be upgraded to schema version ${LATEST_SCHEMA_VERSION + 1}`),
    );
    const store = SqliteStateStore.open(file);
    expect(store.schemaVersion()).toBe(LATEST_SCHEMA_VERSION);
    store.close();
    const db = new Database(file, { readonly: true });
    expect(db.prepare("SELECT name FROM sqlite_master WHERE name = 'extra'").all()).toEqual([]);
    db.close();
  });

  it("refuses a file written by a newer keypool", () => {
    const file = path.join(dir, "s.db");
    SqliteStateStore.open(file).close();
    const db = new Database(file);
    db.prepare("INSERT INTO schema_migrations (version, description, applied_at) VALUES (?, 'future', 0)").run(LATEST_SCHEMA_VERSION + 5);
    db.close();
    expectRefused(file, new RegExp(`schema version ${LATEST_SCHEMA_VERSION + 5}, newer than this keypool knows`));
  });
});

describe("SqliteStateStore refuses an unusable file, naming it", () => {
  it("refuses a file that is not a SQLite database and leaves it untouched", () => {
    const file = path.join(dir, "keys.db");
    fs.writeFileSync(file, "OPENAI_KEY=sk-this-is-a-text-file\n".repeat(50));
    fs.chmodSync(file, 0o644);
    const before = fs.readFileSync(file);
    expectRefused(file, /is not a SQLite database/);
    expect(fs.readFileSync(file)).toEqual(before);
    expect(fs.statSync(file).mode & 0o777).toBe(0o644);
  });

  it("refuses a file too short to be a database", () => {
    const file = path.join(dir, "short.db");
    fs.writeFileSync(file, "SQLite");
    expectRefused(file, /is not a SQLite database/);
  });

  it("refuses a corrupt database", () => {
    const file = path.join(dir, "s.db");
    const store = SqliteStateStore.open(file);
    store.writeBatch(Array.from({ length: 300 }, (_, i) => upsert(`oai-${String(i).padStart(16, "0")}`)));
    store.close();
    const fd = fs.openSync(file, "r+");
    fs.writeSync(fd, Buffer.alloc(3 * 4096, 0xa5), 0, 3 * 4096, 4096);
    fs.closeSync(fd);
    expectRefused(file, /is corrupt/);
  });

  it("leaves a refused corrupt database byte for byte as it was, whatever its journal mode", () => {
    const file = path.join(dir, "old.db");
    const db = new Database(file);
    db.exec("CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, description TEXT, applied_at INTEGER)");
    db.exec("CREATE TABLE filler (x TEXT)");
    const insert = db.prepare("INSERT INTO filler VALUES (?)");
    for (let i = 0; i < 500; i++) insert.run("y".repeat(200));
    db.close();
    const fd = fs.openSync(file, "r+");
    fs.writeSync(fd, Buffer.alloc(2 * 4096, 0x5a), 0, 2 * 4096, 2 * 4096);
    fs.closeSync(fd);
    const before = fs.readFileSync(file);
    expectRefused(file, /is corrupt/);
    expect(fs.readFileSync(file)).toEqual(before);
  });

  it("refuses a path that is a directory (unreadable as a file, even for root)", () => {
    const file = path.join(dir, "state.db");
    fs.mkdirSync(file);
    expectRefused(file, /is a directory/);
  });

  it("refuses a path under something that is not a directory", () => {
    const blocker = path.join(dir, "not-a-dir");
    fs.writeFileSync(blocker, "x");
    expectRefused(path.join(blocker, "state.db"), /ENOTDIR: not a directory/);
  });

  it("refuses another program's SQLite database", () => {
    const file = path.join(dir, "other.db");
    const db = new Database(file);
    db.exec("CREATE TABLE invoices (id INTEGER)");
    db.close();
    const before = fs.readFileSync(file);
    expectRefused(file, /not a keypool state file \(it has the tables invoices\)/);
    // Not even its journal mode was changed.
    expect(fs.readFileSync(file)).toEqual(before);
    expect(fs.existsSync(`${file}-wal`)).toBe(false);
  });
});
