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
import { credential, MODEL_OF } from "../domain/providers/fixtures";

const A: KeySpec = { provider: "openai", key: "sk-configured-a" };
const B: KeySpec = { provider: "openai", key: "sk-configured-b" };
const C: KeySpec = { provider: "anthropic", key: "sk-ant-added-at-run-time" };

let dir: string;
let file: string;
let clock: ManualClock;
const opened: Array<{ pool: KeyPool; state?: DurableState }> = [];

beforeEach(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), "keypool-durable-"));
  file = path.join(dir, "data", "keypool.db");
  clock = new ManualClock();
});
afterEach(() => {
  for (const { pool, state } of opened.splice(0)) {
    pool.close();
    try {
      state?.close();
    } catch {
      // already closed by the test
    }
  }
  fs.rmSync(dir, { recursive: true, force: true });
});

/** One server start: a fresh pool filled from the state file and the configuration. */
function start(configured: KeySpec[], logger = new RecordingLogger(), location = file) {
  const pool = new KeyPool({ clock });
  const handle: { pool: KeyPool; state?: DurableState } = { pool };
  opened.push(handle);
  handle.state = openDurableState({ location, pool, configured, clock, logger });
  return { pool, state: handle.state, logger };
}

const hashes = (pool: KeyPool) => pool.listKeys().map((k) => k.keyHash);

describe("openDurableState", () => {
  it("restores acknowledged changes after a crash (no close) and applies the configuration", async () => {
    const first = start([A, B]);
    const [hashA, hashB] = first.pool.addKeys([A, B]).keyHashes as [string, string];
    first.pool.incrementUsage({ keyHash: hashA, model: "gpt-4", inputTokens: 1000, outputTokens: 200 });
    first.pool.incrementUsage({ keyHash: hashA, model: "gpt-3.5-turbo", inputTokens: 7, outputTokens: 3 });
    const [hashC] = first.pool.addKeys([C]).keyHashes as [string];
    first.pool.disableKey(hashB, "revoked", "upstream said 401");
    first.pool.reportRateLimit({ keyHash: hashA, statusCode: 429, headers: { "retry-after": "30" } });
    await first.state.flush();
    // The process dies here: nothing else is written, and the kernel drops its lock.
    first.state.lock!.release();

    const second = start([A]);
    expect(hashes(second.pool)).toEqual([hashC, hashA].sort());
    const a = second.pool.getKey(hashA)!;
    expect(a.usage).toEqual({
      gpt4: { inputTokens: 1000, outputTokens: 200, prompts: 1 },
      turbo: { inputTokens: 7, outputTokens: 3, prompts: 1 },
    });
    expect(a.promptCount).toBe(2);
    expect(a.cooldownUntil).toBe(clock.now() + 30_000);
    expect(a.rateLimitedAt).toBe(clock.now());
    // The key added at run time kept its secret: it can be leased again.
    expect(second.pool.secretOf(hashC)).toBe(C.key);
    // B left the configuration: out of the pool, said in the log by hash, history still on file.
    const left = second.logger.lines.find((l) => l.fields.keyHash === hashB);
    expect(left?.message).toMatch(/no longer configured/);
    expect(JSON.stringify(second.logger.lines)).not.toContain(B.key);
    second.state.close();
    const store = SqliteStateStore.open(file);
    const rowB = [...store.storedKeys()].find((k) => k.record.keyHash === hashB)!;
    store.close();
    expect(rowB.record).toMatchObject({ state: "revoked", stateReason: "upstream said 401" });

    // Configured again: B comes back with its history, still revoked.
    const third = start([A, B]);
    expect(third.pool.getKey(hashB)).toMatchObject({ state: "revoked" });
  });

  it("keeps keys of all seven providers across a restart, composite credentials whole and their state", async () => {
    const providers = Object.keys(MODEL_OF) as KeySpec["provider"][];
    const specs: KeySpec[] = providers.map((provider) => ({ provider, key: credential(provider), ...(provider === "openai" || provider === "azure" ? { modelFamilies: ["gpt4o"] } : {}) }));
    const first = start([]);
    const keyHashes = first.pool.addKeys(specs).keyHashes;
    const bedrock = keyHashes[providers.indexOf("bedrock")];
    first.pool.reportRateLimit({ keyHash: bedrock, statusCode: 429, headers: {} });
    await first.state.flush();
    first.state.lock!.release(); // the process dies

    const second = start([]);
    providers.forEach((provider, i) => {
      expect(second.pool.getKey(keyHashes[i])?.provider).toBe(provider);
      expect(second.pool.secretOf(keyHashes[i])).toBe(specs[i].key);
    });
    expect(second.pool.getKey(bedrock)!.cooldownUntil).toBe(clock.now() + 10_000);
    expect(second.pool.lease({ model: MODEL_OF.vertex.model, provider: "vertex" }).key).toBe(credential("vertex"));
  });

  it("keeps a key removed with RemoveKey out, with its history on file", async () => {
    const first = start([A]);
    const [hashA] = first.pool.listKeys().map((k) => k.keyHash) as [string];
    const [hashC] = first.pool.addKeys([C]).keyHashes as [string];
    first.pool.incrementUsage({ keyHash: hashC, model: "claude-3-5-sonnet-20241022", inputTokens: 5, outputTokens: 5 });
    first.pool.removeKey(hashC);
    first.pool.removeKey(hashA);
    await first.state.flush();
    first.state.lock!.release(); // the process dies

    const logger = new RecordingLogger();
    const second = start([A], logger);
    expect(hashes(second.pool)).toEqual([]);
    expect(logger.lines.find((l) => l.fields.keyHash === hashA)?.message).toMatch(/removed with RemoveKey/);
    second.state.close();
    const store = SqliteStateStore.open(file);
    const rowC = [...store.storedKeys()].find((k) => k.record.keyHash === hashC)!;
    store.close();
    expect(rowC.removedAt).toBeGreaterThan(0);
    expect(rowC.record.promptCount).toBe(1);
  });

  it("writes a configured key when it first changes, as configured, not at start", async () => {
    const first = start([A, B]);
    const hashA = hashKey("openai", A.key, "");
    const hashB = hashKey("openai", B.key, "");
    const onFile = () => {
      const store = SqliteStateStore.open(file);
      try {
        return [...store.storedKeys()];
      } finally {
        store.close();
      }
    };
    // Nothing happened to them yet: the configuration holds all there is to know.
    expect(onFile()).toEqual([]);
    first.pool.incrementUsage({ keyHash: hashA, model: "gpt-4", inputTokens: 3, outputTokens: 4 });
    await first.state.flush();
    expect(onFile().map((k) => [k.record.keyHash, k.origin, k.record.key])).toEqual([[hashA, "config", A.key]]);
    first.state.close();

    // A leaves the configuration: as a configured key it leaves the pool.
    const second = start([B]);
    expect(hashes(second.pool)).toEqual([hashB]);
  });

  it("keeps each key's origin through restarts: configured keys as configured, keys added at run time as added", async () => {
    const onFile = () => {
      const store = SqliteStateStore.open(file);
      try {
        return new Map([...store.storedKeys()].map((k) => [k.record.keyHash, k.origin]));
      } finally {
        store.close();
      }
    };
    const first = start([A, B]);
    const hashA = hashKey("openai", A.key, "");
    const hashB = hashKey("openai", B.key, "");
    const [hashC] = first.pool.addKeys([C]).keyHashes as [string];
    first.pool.incrementUsage({ keyHash: hashA, model: "gpt-4", inputTokens: 1, outputTokens: 1 });
    await first.state.flush();
    expect(onFile()).toEqual(new Map([[hashA, "config"], [hashC, "runtime"]]));
    first.state.close();

    // After a restart every key changes again; B, configured and never written, gets its first row.
    const second = start([A, B]);
    for (const keyHash of [hashA, hashB, hashC]) {
      second.pool.incrementUsage({ keyHash, model: keyHash === hashC ? "claude-3-5-sonnet-20241022" : "gpt-4", inputTokens: 1, outputTokens: 1 });
    }
    await second.state.flush();
    expect(onFile()).toEqual(new Map([[hashA, "config"], [hashB, "config"], [hashC, "runtime"]]));
  });

  it("keeps soft state (last used, holds, cooldowns) through a graceful shutdown", async () => {
    const first = start([A]);
    const lease = first.pool.lease({ model: "gpt-4" });
    first.pool.reportRateLimit({ keyHash: lease.keyHash, statusCode: 429, headers: { "retry-after-ms": "45000" } });
    const before = first.pool.getKey(lease.keyHash)!;
    clock.advance(10);
    first.state.close();

    const second = start([A]);
    const after = second.pool.getKey(lease.keyHash)!;
    expect(after).toMatchObject({
      lastUsed: before.lastUsed,
      leaseCount: 1,
      holdUntil: before.holdUntil,
      cooldownUntil: before.cooldownUntil,
      rateLimitedAt: before.rateLimitedAt,
      inFlight: 0,
    });
    expect(before.lastUsed).toBeGreaterThan(0);
  });

  it("brings back a key leased after its row was written with the lease's fields, and a hard change after it with both", async () => {
    /** What the file holds of A: its row's lease fields, and its soft row if any. */
    const onFile = (keyHash: string) => {
      const db = new Database(file, { readonly: true });
      try {
        return {
          row: db.prepare("SELECT json_extract(status, '$.lastUsed') AS lastUsed, json_extract(status, '$.leaseCount') AS leaseCount FROM keys WHERE key_hash = ?").get(keyHash),
          soft: db.prepare("SELECT last_used AS lastUsed, lease_count AS leaseCount, hold_until AS holdUntil FROM key_soft WHERE key_hash = ?").get(keyHash),
        };
      } finally {
        db.close();
      }
    };
    const first = start([A]);
    const hashA = hashKey("openai", A.key, "");
    first.pool.incrementUsage({ keyHash: hashA, model: "gpt-4", inputTokens: 1, outputTokens: 1 });
    await first.state.flush();
    clock.advance(5_000);
    const leased = first.pool.lease({ model: "gpt-4" });
    expect(leased.keyHash).toBe(hashA);
    await first.state.flush();
    // The lease wrote A's lease fields beside its row, not the row again.
    expect(onFile(hashA)).toEqual({ row: { lastUsed: 0, leaseCount: 0 }, soft: { lastUsed: clock.now(), leaseCount: 1, holdUntil: clock.now() + 1_000 } });
    first.state.lock!.release(); // the process dies

    const second = start([A]);
    expect(second.pool.getKey(hashA)).toMatchObject({ lastUsed: clock.now(), leaseCount: 1, holdUntil: clock.now() + 1_000, readyAt: clock.now() + 1_000, promptCount: 1, inFlight: 0 });
    clock.advance(5_000);
    second.pool.lease({ model: "gpt-4" });
    const leasedAt = clock.now();
    await second.state.flush();
    expect(onFile(hashA).soft).toEqual({ lastUsed: leasedAt, leaseCount: 2, holdUntil: leasedAt + 1_000 });
    // A report: the whole row again, lease fields included; the soft row goes.
    second.pool.reportRateLimit({ keyHash: hashA, statusCode: 429, headers: { "retry-after": "30" } });
    await second.state.flush();
    expect(onFile(hashA)).toEqual({ row: { lastUsed: leasedAt, leaseCount: 2 }, soft: undefined });
    second.state.lock!.release(); // the process dies

    const third = start([A]);
    expect(third.pool.getKey(hashA)).toMatchObject({ lastUsed: leasedAt, leaseCount: 2, holdUntil: leasedAt + 1_000, cooldownUntil: leasedAt + 30_000, promptCount: 1 });
  });

  it("writes a configured key's whole row at its first lease, as configured, and soft rows after", async () => {
    const first = start([A]);
    const hashA = hashKey("openai", A.key, "");
    first.pool.lease({ model: "gpt-4" });
    await first.state.flush();
    clock.advance(5_000);
    first.pool.lease({ model: "gpt-4" });
    await first.state.flush();
    const db = new Database(file, { readonly: true });
    const rows = db.prepare("SELECT key_hash, origin, json_extract(status, '$.leaseCount') AS leaseCount FROM keys").all();
    const soft = db.prepare("SELECT key_hash, lease_count FROM key_soft").all();
    db.close();
    expect(rows).toEqual([{ key_hash: hashA, origin: "config", leaseCount: 1 }]);
    expect(soft).toEqual([{ key_hash: hashA, lease_count: 2 }]);
    first.state.close();
    const second = start([A]);
    expect(second.pool.getKey(hashA)).toMatchObject({ leaseCount: 2, lastUsed: clock.now() });
  });

  it("lets a flush of one call cover a lease that came before it", async () => {
    const first = start([A]);
    const lease = first.pool.lease({ model: "gpt-4" });
    first.pool.incrementUsage({ keyHash: lease.keyHash, model: "gpt-4", inputTokens: 1, outputTokens: 1, leaseId: lease.leaseId });
    await first.state.flush();
    first.state.lock!.release(); // the process dies
    const second = start([A]);
    expect(second.pool.getKey(lease.keyHash)).toMatchObject({ leaseCount: 1, inFlight: 0, promptCount: 1 });
  });

  it("stops at an unusable file, leaving the pool empty", () => {
    fs.mkdirSync(path.dirname(file), { recursive: true });
    fs.writeFileSync(file, "this is not a database, and must not be replaced by one\n");
    const pool = new KeyPool({ clock });
    opened.push({ pool });
    expect(() => openDurableState({ location: file, pool, configured: [A], clock, logger: new RecordingLogger() })).toThrow(StateFileError);
    expect(pool.size).toBe(0);
    expect(fs.readFileSync(file, "utf8")).toMatch(/must not be replaced/);
  });

  it("with KEYPOOL_STATE=memory adds the configured keys and writes nothing", async () => {
    const logger = new RecordingLogger();
    const { pool, state } = start([A, B], logger, "memory");
    expect(pool.size).toBe(2);
    expect(state.persistent).toBe(false);
    pool.incrementUsage({ keyHash: hashes(pool)[0]!, model: "gpt-4", inputTokens: 1, outputTokens: 1 });
    await state.flush();
    expect(fs.existsSync(path.dirname(file))).toBe(false);
    expect(logger.lines[0]?.message).toMatch(/nothing is kept/);
  });
});
