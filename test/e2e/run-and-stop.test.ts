/**
 * keypool run the ways the README documents: `npm start` stopped by each signal an operator or a
 * terminal sends (npm is the process signalled, not the node inside it), one keypool per state
 * file, a restart after SIGKILL, and the command line (`--help`, `--version`).
 */
import { execFile } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { promisify } from "node:util";
import { durationFromMs } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError } from "@connectrpc/connect";
import Database from "better-sqlite3";
import { KeyPoolService } from "../../gen/ts/keypool/v1/keypool_pb";
import { shownDefault } from "../../src/cli/server-args";
import { allSettings } from "../../src/config/settings";
import { MAIN_JS, REPO_ROOT, ensureBuilt, runServerExpectingFailure, spawnKeypool, spawnServer } from "../support/child-server";
import { connectClient } from "../support/clients";

const run = promisify(execFile);
const VERSION = (JSON.parse(fs.readFileSync(path.join(REPO_ROOT, "package.json"), "utf8")) as { version: string }).version;
const OPENAI_SECRET = "sk-run-and-stop-test-0001";

jest.setTimeout(60_000);
beforeAll(() => ensureBuilt(), 180_000);

let dir: string;
beforeEach(() => (dir = fs.mkdtempSync(path.join(os.tmpdir(), "keypool-run-"))));
afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

const alive = (pid: number) => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};

async function waitUntilGone(pid: number, withinMs: number): Promise<number> {
  const started = Date.now();
  while (alive(pid)) {
    if (Date.now() - started > withinMs) throw new Error(`process ${pid} still runs after ${withinMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  return Date.now() - started;
}

describe.each(["SIGTERM", "SIGINT", "SIGHUP"] as const)("%s to `npm start`", (signal) => {
  it("drains keypool (waits end UNAVAILABLE, state written) and it exits within 5 s", async () => {
    const state = path.join(dir, "keypool.db");
    const server = await spawnKeypool({
      command: "npm",
      args: ["start", "--silent"],
      env: { OPENAI_KEY: OPENAI_SECRET, KEYPOOL_STATE: state, KEYPOOL_REUSE_DELAY: "1m" },
    });
    const listening = server.logs.find((l) => l.msg === "keypool listening")!;
    const keypoolPid = listening.pid as number;
    expect(keypoolPid).not.toBe(server.child.pid); // npm is the process signalled, keypool its child

    const pool = connectClient(KeyPoolService, server.url);
    const lease = await pool.lease({ model: "gpt-3.5-turbo" }); // held for a minute: soft state only
    const waiting = pool.lease({ model: "gpt-3.5-turbo", maxWait: durationFromMs(60_000) }).then(
      () => undefined,
      (err: unknown) => ConnectError.from(err).code,
    );
    await pool.getLockoutPeriod({ model: "gpt-3.5-turbo" }); // the wait is queued

    server.child.kill(signal);
    const elapsed = await waitUntilGone(keypoolPid, 5000);
    expect(elapsed).toBeLessThan(5000);
    expect(await waiting).toBe(Code.Unavailable);
    await server.exited;
    expect(server.logs.map((l) => l.msg)).toEqual(expect.arrayContaining(["shutting down", "state file closed", "stopped"]));

    // The lease was written by the drain, not by a commit it waited for.
    const db = new Database(state, { readonly: true });
    const row = db.prepare("SELECT json_extract(status, '$.leaseCount') AS leases FROM keys WHERE key_hash = ?").get(lease.keyHash) as
      | { leases: number }
      | undefined;
    db.close();
    expect(row?.leases).toBe(1);
  });
});

describe("one keypool per state file", () => {
  it("refuses a second process, naming the file and the holder's PID, and leaves the first serving", async () => {
    const state = path.join(dir, "keypool.db");
    const first = await spawnServer({ OPENAI_KEY: OPENAI_SECRET, KEYPOOL_STATE: state });
    try {
      const firstPid = first.logs.find((l) => l.msg === "keypool listening")!.pid;
      const second = await runServerExpectingFailure({ OPENAI_KEY: OPENAI_SECRET, KEYPOOL_STATE: state });
      expect(second.code).toBe(1);
      expect(second.stderr).toContain(`keypool state file ${state}: is in use by another keypool (process ${firstPid}`);
      expect(second.stdout + second.stderr).not.toContain(OPENAI_SECRET);

      const pool = connectClient(KeyPoolService, first.url);
      const lease = await pool.lease({ model: "gpt-3.5-turbo" });
      await pool.incrementUsage({ keyHash: lease.keyHash, model: "gpt-3.5-turbo", inputTokens: 5n, outputTokens: 1n, leaseId: lease.leaseId });
    } finally {
      expect(await first.stop()).toEqual({ code: 0, signal: null });
    }
  });

  it("starts again at once after SIGKILL: the dead process's lock is gone, its acknowledged changes kept", async () => {
    const state = path.join(dir, "keypool.db");
    const first = await spawnServer({ OPENAI_KEY: OPENAI_SECRET, KEYPOOL_STATE: state });
    const pool = connectClient(KeyPoolService, first.url);
    const lease = await pool.lease({ model: "gpt-3.5-turbo" });
    await pool.incrementUsage({ keyHash: lease.keyHash, model: "gpt-3.5-turbo", inputTokens: 7n, outputTokens: 3n, leaseId: lease.leaseId });
    expect(await first.stop("SIGKILL")).toEqual({ code: null, signal: "SIGKILL" });
    expect(fs.existsSync(`${state}.lock`)).toBe(true); // nothing cleaned it up, and it does not matter

    const second = await spawnServer({ OPENAI_KEY: OPENAI_SECRET, KEYPOOL_STATE: state });
    try {
      const [key] = (await connectClient(KeyPoolService, second.url).listKeys({})).keys;
      expect(key?.promptCount).toBe(1n);
    } finally {
      await second.stop();
    }
  });
});

describe("the command line", () => {
  it("keypool --help prints every setting with its default and exits 0 without serving", async () => {
    const { stdout } = await run(process.execPath, [MAIN_JS, "--help"], { timeout: 10_000 });
    expect(stdout).toContain(`keypool ${VERSION}`);
    expect(allSettings().length).toBeGreaterThan(20);
    for (const setting of allSettings()) {
      const line = stdout.split("\n").find((l) => l.trimStart().startsWith(`${setting.name} `));
      expect(line).toBeDefined();
      expect(line).toContain(` ${shownDefault(setting)} `);
    }
    expect(stdout).toContain(" 127.0.0.1 "); // KEYPOOL_HOST's default, spelled out
    expect(stdout).toContain(" ./data/keypool.db ");
  });

  it("keypool --version and keypool-watch --version print package.json's version", async () => {
    expect((await run(process.execPath, [MAIN_JS, "--version"])).stdout).toBe(`keypool ${VERSION}\n`);
    const watch = path.join(REPO_ROOT, "dist/src/cli/watch.js");
    expect((await run(process.execPath, [watch, "--version"])).stdout).toBe(`keypool-watch ${VERSION}\n`);
  });

  it("an unknown argument stops with exit code 2 and points at --help", async () => {
    const failed = await run(process.execPath, [MAIN_JS, "--port", "1"]).then(
      () => undefined,
      (err: { code: number; stderr: string }) => err,
    );
    expect(failed?.code).toBe(2);
    expect(failed?.stderr).toMatch(/keypool --help/);
  });

  it("a keys file entry with an unknown family stops the start, naming the file, entry and provider, never the key", async () => {
    const keysFile = path.join(dir, "keys.yaml");
    fs.writeFileSync(keysFile, "- provider: openai\n  key: sk-keys-file-secret-0001\n  modelFamilies: [gpt99]\n");
    const { code, stdout, stderr } = await runServerExpectingFailure({ KEYPOOL_KEYS_FILE: keysFile });
    expect(code).toBe(2);
    expect(stderr).toContain(`${keysFile}: entry 1 (openai): "gpt99" is not one of the openai model families`);
    expect(stdout + stderr).not.toContain("sk-keys-file-secret-0001");
  });

  it("the start-up line says version, address, protocols, state, key counts and auth mode", async () => {
    const state = path.join(dir, "keypool.db");
    const server = await spawnServer({ OPENAI_KEY: OPENAI_SECRET, KEYPOOL_STATE: state });
    await server.stop();
    expect(server.logs.find((l) => l.msg === "keypool listening")).toMatchObject({
      version: VERSION,
      host: "127.0.0.1",
      port: server.port,
      protocols: ["grpc", "grpc-web", "connect"],
      http: ["h2c", "http/1.1"],
      tls: false,
      state,
      keys: { openai: 1 },
      auth: "none (loopback only)",
    });
  });
});
