/**
 * Durability seen from outside: the built server runs as a child process with a state file,
 * is killed or stopped, and started again on the same file.
 */
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import type * as grpc from "@grpc/grpc-js";
import { grpcJsClient, grpcJsUnary, loadGrpcJsPackage } from "../support/clients";
import { SqliteStateStore } from "../../src/storage/sqlite-store";
import { freshKeyStatus } from "../../src/domain/key-entry";
import { ensureBuilt, runServerExpectingFailure, spawnServer, type ChildServer } from "../support/child-server";

jest.setTimeout(90_000);

const KEY_A = "sk-durable-test-key-a-0001";
const KEY_B = "sk-durable-test-key-b-0002";
const KEY_C = "sk-durable-test-added-at-run-time-0003";
const MODEL = "gpt-3.5-turbo"; // family "turbo"
// Every call counts these; a stored total that is not a multiple of them was torn.
const INPUT_PER_CALL = 7;
const OUTPUT_PER_CALL = 11;

interface WireUsage {
  inputTokens: string;
  outputTokens: string;
  prompts: string;
}
interface WireTime {
  seconds: string;
  nanos: number;
}
interface WireKey {
  keyHash: string;
  state: string;
  stateReason: string;
  promptCount: string;
  leaseCount: string;
  usage: Record<string, WireUsage>;
  lastUsed: WireTime | null;
  rateLimitedAt: WireTime | null;
  readyAt: WireTime | null;
  cooldownUntil: WireTime | null;
}

const pkg = loadGrpcJsPackage();
let dir: string;
let stateFile: string;
const clients: grpc.Client[] = [];
const servers: ChildServer[] = [];

/** The built server on this test's state file (KEYPOOL_STATE), port 0. */
async function start(extra: Record<string, string> = {}): Promise<ChildServer> {
  const server = await spawnServer(env(extra), 30_000);
  servers.push(server);
  return server;
}

// Builds dist/ if it is older than src/ (npm test has built it already), outside the tests' time.
beforeAll(() => ensureBuilt(), 180_000);
beforeEach(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), "keypool-e2e-storage-"));
  stateFile = path.join(dir, "state", "keypool.db");
});
afterEach(async () => {
  for (const c of clients.splice(0)) c.close();
  await Promise.all(servers.splice(0).map((s) => s.stop("SIGKILL")));
  fs.rmSync(dir, { recursive: true, force: true });
});

function env(extra: Record<string, string> = {}): Record<string, string> {
  return { KEYPOOL_STATE: stateFile, OPENAI_KEY: `${KEY_A},${KEY_B}`, KEYPOOL_REUSE_DELAY: "0", ...extra };
}

function connectTo(server: ChildServer) {
  const port = server.port;
  const pool = grpcJsClient(pkg.KeyPoolService, port);
  const admin = grpcJsClient(pkg.KeyAdminService, port);
  clients.push(pool, admin);
  return { pool, admin };
}

async function listKeys(client: grpc.Client): Promise<Map<string, WireKey>> {
  const { keys } = await grpcJsUnary<{ keys: WireKey[] }>(client, "ListKeys", {}, { deadlineMs: 10_000 });
  return new Map(keys.map((k) => [k.keyHash, k]));
}

const output = (server: ChildServer) => server.output().stdout + server.output().stderr;
const ms = (t: WireTime | null) => (t ? Number(t.seconds) * 1000 + Math.round(t.nanos / 1e6) : 0);

describe("storage end to end", () => {
  it("keeps every acknowledged IncrementUsage and AddKeys through SIGKILL under load, and nothing beyond what was sent", async () => {
    const first = await start();
    const { pool, admin } = connectTo(first);
    const added = await grpcJsUnary<{ keyHashes: string[] }>(admin, "AddKeys", {
      provider: "PROVIDER_OPENAI",
      keys: [{ key: KEY_C }],
    });
    const hashC = added.keyHashes[0]!;
    const hashes = [...(await listKeys(pool)).keys()];
    expect(hashes).toHaveLength(3);

    const sent = new Map(hashes.map((h) => [h, 0]));
    const acked = new Map(hashes.map((h) => [h, 0]));
    let ackedTotal = 0;
    let stop = false;
    let n = 0;
    const IN_FLIGHT = 100;
    const KILL_AFTER = 1500;
    let killed: Promise<unknown> | undefined;
    const lane = async () => {
      while (!stop) {
        const keyHash = hashes[n++ % hashes.length]!;
        sent.set(keyHash, sent.get(keyHash)! + 1);
        try {
          await grpcJsUnary(pool, "IncrementUsage", {
            keyHash,
            model: MODEL,
            inputTokens: INPUT_PER_CALL,
            outputTokens: OUTPUT_PER_CALL,
          });
        } catch {
          return; // the server is gone
        }
        acked.set(keyHash, acked.get(keyHash)! + 1);
        if (++ackedTotal === KILL_AFTER) {
          // Killed with ~100 calls still in flight: some may be applied but never acknowledged.
          stop = true;
          killed = first.stop("SIGKILL");
        }
      }
    };
    await Promise.all(Array.from({ length: IN_FLIGHT }, lane));
    expect(await killed).toEqual({ code: null, signal: "SIGKILL" });
    const sentTotal = [...sent.values()].reduce((a, b) => a + b, 0);
    expect(sentTotal).toBeGreaterThan(ackedTotal);

    const second = await start();
    const after = connectTo(second);
    const keys = await listKeys(after.pool);
    expect([...keys.keys()].sort()).toEqual([...hashes].sort());
    for (const keyHash of hashes) {
      const key = keys.get(keyHash)!;
      const prompts = Number(key.promptCount);
      expect(prompts).toBeGreaterThanOrEqual(acked.get(keyHash)!);
      expect(prompts).toBeLessThanOrEqual(sent.get(keyHash)!);
      expect(key.usage.turbo).toEqual({
        inputTokens: String(prompts * INPUT_PER_CALL),
        outputTokens: String(prompts * OUTPUT_PER_CALL),
        prompts: String(prompts),
      });
    }

    // The key added at run time kept its secret: with the configured keys disabled, Lease hands it out.
    for (const keyHash of hashes.filter((h) => h !== hashC)) {
      await grpcJsUnary(after.admin, "DisableKey", { keyHash, reason: "test" });
    }
    const lease = await grpcJsUnary<{ key: string; keyHash: string }>(after.pool, "Lease", { model: MODEL });
    expect(lease).toMatchObject({ key: KEY_C, keyHash: hashC });

    // The state file is 0600: it holds secrets.
    expect(fs.statSync(stateFile).mode & 0o777).toBe(0o600);
    expect(output(second)).not.toContain(KEY_C);
  });

  it("keeps acknowledged admin changes through SIGKILL: disable, enable, remove", async () => {
    const first = await start();
    const { pool, admin } = connectTo(first);
    const [hashA, hashB] = [...(await listKeys(pool)).keys()].sort() as [string, string];
    await grpcJsUnary(admin, "DisableKey", { keyHash: hashA, state: "KEY_STATE_REVOKED", reason: "upstream said 401" });
    await grpcJsUnary(admin, "RemoveKey", { keyHash: hashB });
    await first.stop("SIGKILL");

    const second = await start();
    const after = connectTo(second);
    const keys = await listKeys(after.pool);
    // B was removed by an operator: it stays out although OPENAI_KEY still names it.
    expect([...keys.keys()]).toEqual([hashA]);
    expect(keys.get(hashA)).toMatchObject({ state: "KEY_STATE_REVOKED", stateReason: "upstream said 401" });
    await grpcJsUnary(after.admin, "EnableKey", { keyHash: hashA });
    await second.stop("SIGKILL");

    const third = await start();
    const again = connectTo(third);
    expect((await listKeys(again.pool)).get(hashA)).toMatchObject({ state: "KEY_STATE_ACTIVE" });
  });

  it("keeps an acknowledged revocation and cooldown from ReportRateLimit through SIGKILL", async () => {
    const first = await start();
    const { pool } = connectTo(first);
    const [hashA, hashB] = [...(await listKeys(pool)).keys()].sort() as [string, string];
    await grpcJsUnary(pool, "ReportRateLimit", { keyHash: hashA, statusCode: 401, headers: {} });
    await grpcJsUnary(pool, "ReportRateLimit", { keyHash: hashB, statusCode: 429, headers: { "retry-after": "50" } });
    const cooling = (await listKeys(pool)).get(hashB)!;
    await first.stop("SIGKILL");

    const second = await start();
    const keys = await listKeys(connectTo(second).pool);
    expect(keys.get(hashA)).toMatchObject({ state: "KEY_STATE_REVOKED" });
    expect(ms(keys.get(hashB)!.cooldownUntil)).toBe(ms(cooling.cooldownUntil));
    expect(ms(keys.get(hashB)!.cooldownUntil)).toBeGreaterThan(Date.now());
  });

  it("keeps soft state (last used, cooldown) through a graceful shutdown", async () => {
    const first = await start({ OPENAI_KEY: KEY_A });
    const { pool } = connectTo(first);
    const lease = await grpcJsUnary<{ keyHash: string }>(pool, "Lease", { model: MODEL });
    await grpcJsUnary(pool, "ReportRateLimit", { keyHash: lease.keyHash, statusCode: 429, headers: { "retry-after": "50" } });
    const before = (await listKeys(pool)).get(lease.keyHash)!;
    expect(ms(before.lastUsed)).toBeGreaterThan(0);
    for (const c of clients.splice(0)) c.close();
    expect(await first.stop("SIGTERM")).toEqual({ code: 0, signal: null });

    const second = await start({ OPENAI_KEY: KEY_A });
    const after = (await listKeys((connectTo(second)).pool)).get(lease.keyHash)!;
    expect(ms(after.lastUsed)).toBe(ms(before.lastUsed));
    expect(ms(after.rateLimitedAt)).toBe(ms(before.rateLimitedAt));
    expect(ms(after.readyAt)).toBe(ms(before.readyAt));
    expect(after.leaseCount).toBe("1");
  });

  it("logs, by hash, a configured key that left the configuration, and keeps its history", async () => {
    const first = await start();
    const { pool } = connectTo(first);
    const hashes = [...(await listKeys(pool)).keys()];
    for (const keyHash of hashes) {
      await grpcJsUnary(pool, "IncrementUsage", { keyHash, model: MODEL, inputTokens: 1, outputTokens: 1 });
    }
    await first.stop("SIGKILL");

    const second = await start({ OPENAI_KEY: KEY_A });
    const after = await listKeys((connectTo(second)).pool);
    expect(after.size).toBe(1);
    const [hashLeft] = hashes.filter((h) => !after.has(h));
    expect(output(second)).toMatch(new RegExp(`"keyHash":"${hashLeft}".*no longer configured`));
    expect(output(second)).not.toContain(KEY_B);
    await second.stop("SIGTERM");
    const store = SqliteStateStore.open(stateFile);
    const row = [...store.storedKeys()].find((k) => k.record.keyHash === hashLeft)!;
    store.close();
    expect(row.record.promptCount).toBe(1);
  });

  it("refuses to start on a corrupt state file, naming it, and leaves the file alone", async () => {
    const store = SqliteStateStore.open(stateFile);
    store.writeBatch(
      Array.from({ length: 300 }, (_, i) => ({
        kind: "upsert" as const,
        status: freshKeyStatus(`oai-${String(i).padStart(16, "0")}`, "openai", ["turbo"]),
        secret: `sk-${i}`,
        origin: "config" as const,
        removedAt: 0,
      })),
    );
    store.close();
    const fd = fs.openSync(stateFile, "r+");
    fs.writeSync(fd, Buffer.alloc(3 * 4096, 0xa5), 0, 3 * 4096, 4096);
    fs.closeSync(fd);
    const damaged = fs.readFileSync(stateFile);

    const failed = await runServerExpectingFailure(env());
    expect(failed.code).not.toBe(0);
    expect(failed.code).not.toBeNull();
    const text = failed.stdout + failed.stderr;
    expect(text).toContain(stateFile);
    expect(text).toMatch(/is corrupt/);
    expect(text).not.toMatch(/keypool listening/);
    expect(fs.readFileSync(stateFile)).toEqual(damaged);
  });

  it("refuses to start on a state file it cannot read, naming it", async () => {
    // Tests run as root, which chmod 000 does not stop: a directory is unreadable as a file for anyone.
    fs.mkdirSync(stateFile, { recursive: true });
    const asDirectory = await runServerExpectingFailure(env());
    expect(asDirectory.code).not.toBe(0);
    expect(asDirectory.code).not.toBeNull();
    expect(asDirectory.stdout + asDirectory.stderr).toContain(stateFile);
    expect(asDirectory.stdout + asDirectory.stderr).toMatch(/is a directory/);

    const textFile = path.join(dir, "notes.txt");
    fs.writeFileSync(textFile, "not a database\n");
    const notSqlite = await runServerExpectingFailure(env({ KEYPOOL_STATE: textFile }));
    expect(notSqlite.code).not.toBe(0);
    expect(notSqlite.stdout + notSqlite.stderr).toContain(`${textFile}: is not a SQLite database`);
    expect(fs.readFileSync(textFile, "utf8")).toBe("not a database\n");
  });
});
