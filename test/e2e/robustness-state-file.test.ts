/**
 * The state file under faults, seen from outside: the built server runs as a child process with
 * KEYPOOL_STATE, and the file is deleted, replaced, moved away and back while it runs, or is a
 * link to nothing, or cannot be written at start. Nothing may be acknowledged that is not in the
 * file at the path, and every failure names the file.
 */
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { spawn } from "node:child_process";
import * as grpc from "@grpc/grpc-js";
import { grpcJsClient, grpcJsUnary, loadGrpcJsPackage } from "../support/clients";
import { MAIN_JS, REPO_ROOT, ensureBuilt, runServerExpectingFailure, spawnServer, type ChildServer } from "../support/child-server";
import { withCheckerSafety } from "../support/checker-safety";

jest.setTimeout(90_000);

const MODEL = "gpt-3.5-turbo";
const pkg = loadGrpcJsPackage();
let dir: string;
let stateFile: string;
const clients: grpc.Client[] = [];
const servers: ChildServer[] = [];

beforeAll(() => ensureBuilt(), 180_000);
beforeEach(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), "keypool-e2e-state-file-"));
  stateFile = path.join(dir, "keypool.db");
});
afterEach(async () => {
  for (const c of clients.splice(0)) c.close();
  await Promise.all(servers.splice(0).map((s) => s.stop("SIGKILL")));
  fs.rmSync(dir, { recursive: true, force: true });
});

async function start(): Promise<ChildServer> {
  const server = await spawnServer({ KEYPOOL_STATE: stateFile, KEYPOOL_REUSE_DELAY: "0" }, 30_000);
  servers.push(server);
  return server;
}

function connectTo(server: ChildServer) {
  const pool = grpcJsClient(pkg.KeyPoolService, server.port);
  const admin = grpcJsClient(pkg.KeyAdminService, server.port);
  const health = grpcJsClient(pkg.Health, server.port);
  clients.push(pool, admin, health);
  return {
    addKeys: (from: number, count: number) =>
      grpcJsUnary<{ keyHashes: string[]; added: number }>(admin, "AddKeys", {
        provider: "PROVIDER_OPENAI",
        keys: Array.from({ length: count }, (_, i) => ({ key: `sk-state-file-test-${from + i}` })),
      }),
    incrementUsage: (keyHash: string) => grpcJsUnary(pool, "IncrementUsage", { keyHash, model: MODEL, inputTokens: 3, outputTokens: 5 }),
    health: async () => (await grpcJsUnary<{ status: string }>(health, "Check", { service: "" })).status,
    count: async () => (await grpcJsUnary<{ keys: unknown[] }>(pool, "ListKeys", {})).keys.length,
  };
}

const failure = (promise: Promise<unknown>) =>
  promise.then(
    () => undefined,
    (err: grpc.ServiceError) => err,
  );

const errorLogs = (server: ChildServer) => server.logs.filter((l) => (l.level as number) >= 50).map((l) => String(l.msg));

async function until(what: string, check: () => Promise<boolean> | boolean, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

describe("the state file deleted or replaced while keypool runs", () => {
  it("deleted (with its -wal and -shm): changes are refused with UNAVAILABLE, health is NOT_SERVING, the log names the file", async () => {
    const server = await start();
    const c = connectTo(server);
    const first = await c.addKeys(0, 20);
    expect(first.added).toBe(20);
    for (const suffix of ["", "-wal", "-shm"]) fs.rmSync(stateFile + suffix, { force: true });

    const refused = await failure(c.addKeys(20, 20));
    expect(refused?.code).toBe(grpc.status.UNAVAILABLE);
    expect(refused?.details).toMatch(/state file was deleted while keypool was running/);
    expect(refused?.details).not.toContain(dir);
    const usage = await failure(c.incrementUsage(first.keyHashes[0]!));
    expect(usage?.code).toBe(grpc.status.UNAVAILABLE);
    await until("health NOT_SERVING", async () => (await c.health()) === "NOT_SERVING");
    // The log line travels through the child's stdout: wait for it rather than race it.
    await until("an error log naming the file", () => errorLogs(server).some((m) => m.includes(stateFile) && m.includes("deleted")));
    // keypool never makes a new, empty file at the path while it runs.
    expect(fs.existsSync(stateFile)).toBe(false);

    const stopped = await server.stop("SIGTERM");
    expect(stopped.code).not.toBe(0);
    expect(fs.existsSync(stateFile)).toBe(false);
  });

  it("replaced by another file: nothing more is acknowledged, and the other file is left as it was", async () => {
    const server = await start();
    const c = connectTo(server);
    await c.addKeys(0, 5);
    const other = path.join(dir, "other.db");
    fs.writeFileSync(other, "not keypool's\n");
    fs.renameSync(other, stateFile);

    const refused = await failure(c.addKeys(5, 5));
    expect(refused?.code).toBe(grpc.status.UNAVAILABLE);
    expect(refused?.details).toMatch(/state file was replaced by another file/);
    await until("health NOT_SERVING", async () => (await c.health()) === "NOT_SERVING");
    // The log line travels through the child's stdout: wait for it rather than race it.
    await until("an error log naming the file", () => errorLogs(server).some((m) => m.includes(stateFile) && m.includes("replaced")));
    await server.stop("SIGTERM");
    expect(fs.readFileSync(stateFile, "utf8")).toBe("not keypool's\n");
  });

  it("moved away and back: saving resumes, health is SERVING again, and every change made meanwhile is kept", async () => {
    const server = await start();
    const c = connectTo(server);
    await c.addKeys(0, 10);
    const aside = path.join(dir, "aside.db");
    fs.renameSync(stateFile, aside);
    expect((await failure(c.addKeys(10, 10)))?.code).toBe(grpc.status.UNAVAILABLE);
    await until("health NOT_SERVING", async () => (await c.health()) === "NOT_SERVING");

    fs.renameSync(aside, stateFile);
    const more = await c.addKeys(20, 10);
    expect(more.added).toBe(10);
    await until("health SERVING", async () => (await c.health()) === "SERVING");
    expect((await server.stop("SIGTERM")).code).toBe(0);

    const again = connectTo(await start());
    // The 10 refused while the file was away were in the pool, and were saved once it was back.
    expect(await again.count()).toBe(30);
  });
});

describe("state files keypool refuses at start, naming the file", () => {
  it("a symbolic link to an empty file does not become a new state file", async () => {
    const empty = path.join(dir, "empty.db");
    fs.writeFileSync(empty, "");
    fs.symlinkSync(empty, stateFile);
    const run = await runServerExpectingFailure({ KEYPOOL_STATE: stateFile });
    expect(run.code).toBe(1);
    expect(run.stderr).toContain(`keypool state file ${stateFile}: is a symbolic link to an empty file`);
    expect(fs.statSync(empty).size).toBe(0);
  });

  it("a symbolic link to nothing is refused the same way", async () => {
    fs.symlinkSync(path.join(dir, "missing.db"), stateFile);
    const run = await runServerExpectingFailure({ KEYPOOL_STATE: stateFile });
    expect(run.code).toBe(1);
    expect(run.stderr).toContain(`keypool state file ${stateFile}: is a symbolic link to nothing`);
  });

  it("a restart that cannot write the file (no room: the file size limit stands in for a full disk) names the file", async () => {
    // A run leaves its changes in the -wal file (SIGKILL: no checkpoint); the restart must fold
    // them into the main file, which the limit does not let grow.
    const server = await start();
    await connectTo(server).addKeys(0, 400);
    await server.stop("SIGKILL");
    // Room for the main file as it is and the 32 KiB -shm index, not for what the -wal holds.
    const limitKiB = Math.ceil(Math.max(fs.statSync(stateFile).size, 32 * 1024) / 1024) + 8;
    expect(fs.statSync(`${stateFile}-wal`).size).toBeGreaterThan(limitKiB * 1024 + 64 * 1024);
    const { code, stderr } = await runLimited(limitKiB);
    expect(code).toBe(1);
    expect(stderr).toContain(`keypool state file ${stateFile}: cannot be written`);
  });
});

/** The built server with its file size limit (ulimit -f, KiB) set, SIGXFSZ ignored so that a write past it fails instead. */
function runLimited(limitKiB: number): Promise<{ code: number | null; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn("bash", ["-c", `trap '' XFSZ; ulimit -f ${limitKiB}; exec "$0" "$1"`, process.execPath, MAIN_JS], {
      cwd: REPO_ROOT,
      env: withCheckerSafety({ PATH: process.env.PATH ?? "", KEYPOOL_PORT: "0", KEYPOOL_STATE: stateFile }),
      stdio: ["ignore", "ignore", "pipe"],
    });
    let stderr = "";
    child.stderr!.setEncoding("utf8").on("data", (c: string) => (stderr += c));
    const timer = setTimeout(() => child.kill("SIGKILL"), 15_000);
    child.once("exit", (code) => {
      clearTimeout(timer);
      resolve({ code, stderr });
    });
  });
}
