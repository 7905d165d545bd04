/**
 * The README's two commands for three replicas and one Redis without containers:
 * scripts/replicas.sh starts redis-server and three keypool processes on consecutive ports that
 * serve one pool, says when they are ready, and SIGTERM stops them all.
 */
import { spawn } from "node:child_process";
import * as fs from "node:fs";
import * as net from "node:net";
import * as os from "node:os";
import * as path from "node:path";
import Redis from "ioredis";
import { KeyPoolService } from "../../gen/ts/keypool/v1/keypool_pb";
import { withCheckerSafety } from "../support/checker-safety";
import { ensureBuilt, REPO_ROOT } from "../support/child-server";
import { connectClient } from "../support/clients";
import { freeLoopbackPort } from "../support/redis-server";

jest.setTimeout(90_000);

const MODEL = "gpt-3.5-turbo";

const listening = (port: number) =>
  new Promise<boolean>((resolve) => {
    const socket = net.connect(port, "127.0.0.1");
    socket.once("connect", () => {
      socket.destroy();
      resolve(true);
    });
    socket.once("error", () => resolve(false));
  });

/** Three consecutive ports that nothing listens on now. */
async function consecutiveFreePorts(): Promise<number> {
  for (;;) {
    const base = await freeLoopbackPort();
    if (base > 65_000) continue;
    const taken = await Promise.all([base, base + 1, base + 2].map(listening));
    if (!taken.some(Boolean)) return base;
  }
}

beforeAll(() => ensureBuilt(), 180_000);

it("starts Redis and three replicas of one pool, and SIGTERM stops every one of them", async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "keypool-replicas-script-"));
  const redisPort = await freeLoopbackPort();
  const base = await consecutiveFreePorts();
  const script = spawn("bash", [path.join(REPO_ROOT, "scripts/replicas.sh")], {
    cwd: REPO_ROOT,
    env: withCheckerSafety({
      PATH: process.env.PATH ?? "",
      HOME: process.env.HOME ?? "/tmp",
      REDIS_PORT: String(redisPort),
      KEYPOOL_BASE_PORT: String(base),
      REPLICAS_DIR: dir,
      OPENAI_KEY: "sk-replicas-script-test-0001,sk-replicas-script-test-0002",
      KEYPOOL_REUSE_DELAY: "5m",
    }),
    stdio: ["ignore", "pipe", "pipe"],
  });
  let output = "";
  script.stdout.on("data", (chunk) => (output += chunk));
  script.stderr.on("data", (chunk) => (output += chunk));
  const exited = new Promise<number | null>((resolve) => script.once("exit", (code) => resolve(code)));
  try {
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`not ready in time:\n${output}`)), 60_000);
      const check = () => {
        if (output.includes("replicas: ready")) {
          clearTimeout(timer);
          resolve();
        }
      };
      script.stdout.on("data", check);
      void exited.then(() => reject(new Error(`the script exited:\n${output}`)));
    });
    expect(output).toContain(`Redis on 127.0.0.1:${redisPort}, keypool on 127.0.0.1:${base}..${base + 2}`);

    // One pool: a key leased through the first replica is held on the third, and the second
    // replica hands out the other key.
    const clients = [0, 1, 2].map((i) => connectClient(KeyPoolService, `http://127.0.0.1:${base + i}`));
    const first = await clients[0]!.lease({ model: MODEL });
    const second = await clients[1]!.lease({ model: MODEL });
    expect(second.keyHash).not.toBe(first.keyHash);
    const listed = await clients[2]!.listKeys({});
    expect(listed.keys.map((k) => k.leaseCount)).toEqual([1n, 1n]);
    // Redis runs with the durability the README asks for, its files in a private directory.
    const redis = new Redis({ host: "127.0.0.1", port: redisPort, lazyConnect: true });
    await redis.connect();
    try {
      expect(await redis.config("GET", "appendonly")).toEqual(["appendonly", "yes"]);
      expect(await redis.config("GET", "appendfsync")).toEqual(["appendfsync", "always"]);
      expect(await redis.config("GET", "bind")).toEqual(["bind", "127.0.0.1"]);
    } finally {
      redis.disconnect();
    }
    expect(fs.statSync(dir).mode & 0o777).toBe(0o700);
    // The script's own settings are not passed on as unknown keypool settings.
    for (let i = 0; i < 3; i++) expect(fs.readFileSync(path.join(dir, `keypool-${base + i}.log`), "utf8")).not.toContain("is not a keypool setting");

    script.kill("SIGTERM");
    expect(await exited).toBe(0);
    expect(output).toContain("replicas: stopped");
    for (const port of [redisPort, base, base + 1, base + 2]) expect(await listening(port)).toBe(false);
  } finally {
    if (script.exitCode === null) script.kill("SIGKILL");
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
