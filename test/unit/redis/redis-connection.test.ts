/**
 * The connection to the pool's Redis against a real, private redis-server: the checks that stop a
 * start (unreachable, credentials, TLS, version), each naming KEYPOOL_STATE and never the
 * password, and the fail-fast behaviour once running (Redis gone: commands fail at once; Redis
 * hung: they fail within KEYPOOL_REDIS_TIMEOUT; Redis back: ready again by itself).
 */
import { createHook } from "node:async_hooks";
import { openRedisConnection, reconnectDelayMs, versionAtLeast, type RedisConnection, type RedisSettings } from "../../../src/redis/redis-connection";
import { parseRedisUrl } from "../../../src/redis/redis-url";
import { freeLoopbackPort, startRedisServer, type RedisServer } from "../../support/redis-server";
import { makeTestCertificate, type TestCertificate } from "../../support/test-certificate";

const PASSWORD = "correct-horse-battery";

interface Logged {
  level: string;
  fields: object;
  message: string;
}

function recordingLogger() {
  const lines: Logged[] = [];
  const at = (level: string) => (fields: object, message: string) => lines.push({ level, fields, message });
  return { lines, logger: { info: at("info"), warn: at("warn"), error: at("error") } };
}

const settingsFor = (url: string, extra: Partial<RedisSettings> = {}): RedisSettings => ({
  target: parseRedisUrl(url, "KEYPOOL_STATE"),
  caFile: "",
  timeoutMs: 500,
  ...extra,
});

async function startError(settings: RedisSettings, minimumVersion?: string): Promise<Error> {
  const { logger } = recordingLogger();
  try {
    const connection = await openRedisConnection(settings, { logger, minimumVersion });
    await connection.close();
  } catch (err) {
    return err as Error;
  }
  throw new Error("the connection opened");
}

const until = async (check: () => boolean, timeoutMs = 10_000) => {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error("condition not met in time");
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
};

describe("with a password and TLS", () => {
  let redis: RedisServer;
  let certificate: TestCertificate;

  beforeAll(async () => {
    certificate = makeTestCertificate();
    redis = await startRedisServer({ password: PASSWORD, tls: { certPath: certificate.certPath, keyPath: certificate.keyPath } });
  });
  afterAll(async () => {
    await redis.close();
    certificate.remove();
  });

  it("connects with the right password, reads Redis's version, and runs commands", async () => {
    const { logger } = recordingLogger();
    const connection = await openRedisConnection(settingsFor(redis.url), { logger });
    try {
      expect(versionAtLeast(connection.version, "6.2.0")).toBe(true);
      expect(connection.available).toBe(true);
      expect(await connection.client.ping()).toBe("PONG");
    } finally {
      await connection.close();
    }
  });

  it("a wrong password stops the start: WRONGPASS, naming KEYPOOL_STATE, password not shown", async () => {
    const err = await startError(settingsFor(`redis://:wrong-${PASSWORD}@127.0.0.1:${redis.port}`));
    expect(err.message).toMatch(/^KEYPOOL_STATE: Redis at redis:\/\/:\*\*\*@127\.0\.0\.1:\d+ refused the user name or password \(WRONGPASS\)/);
    expect(err.message).not.toContain(PASSWORD);
  });

  it("no password where Redis requires one stops the start: NOAUTH, saying where the password goes", async () => {
    const err = await startError(settingsFor(`redis://127.0.0.1:${redis.port}`));
    expect(err.message).toMatch(/^KEYPOOL_STATE: Redis at redis:\/\/127\.0\.0\.1:\d+\/? requires a password \(NOAUTH\)/);
  });

  it("rediss:// with KEYPOOL_REDIS_CA trusting Redis's certificate connects over TLS", async () => {
    const { logger } = recordingLogger();
    const connection = await openRedisConnection(settingsFor(redis.tlsUrl!, { caFile: certificate.certPath }), { logger });
    try {
      // The TLS port speaks nothing but TLS: an answer there is an answer over TLS.
      expect(await connection.client.ping()).toBe("PONG");
    } finally {
      await connection.close();
    }
  });

  it("rediss:// without a CA that trusts the certificate stops the start, pointing at KEYPOOL_REDIS_CA", async () => {
    const err = await startError(settingsFor(redis.tlsUrl!));
    expect(err.message).toMatch(/^KEYPOOL_STATE: the TLS connection to Redis at rediss:\/\/:\*\*\*@localhost:\d+\/? failed \(\w+\); trust its CA with KEYPOOL_REDIS_CA/);
    expect(err.message).not.toContain(PASSWORD);
  });

  it("a CA file that cannot be read stops the start naming KEYPOOL_REDIS_CA", async () => {
    const err = await startError(settingsFor(redis.tlsUrl!, { caFile: "/nonexistent/ca.pem" }));
    expect(err.message).toBe('KEYPOOL_REDIS_CA: cannot read "/nonexistent/ca.pem": ENOENT');
  });

  it("redis:// to the TLS port does not hang: it stops the start within the timeout", async () => {
    const port = Number(/:(\d+)$/.exec(redis.tlsUrl!)![1]);
    const started = Date.now();
    const err = await startError(settingsFor(`redis://:${PASSWORD}@127.0.0.1:${port}`));
    expect(err.message).toMatch(/^KEYPOOL_STATE: /);
    expect(err.message).not.toContain(PASSWORD);
    expect(Date.now() - started).toBeLessThan(3_000);
  });
});

describe("without a password", () => {
  let redis: RedisServer;

  beforeAll(async () => {
    redis = await startRedisServer();
  });
  afterAll(async () => {
    await redis.close();
  });

  it("nothing listening stops the start: cannot reach, naming KEYPOOL_STATE", async () => {
    const port = await freeLoopbackPort();
    const err = await startError(settingsFor(`redis://:${PASSWORD}@127.0.0.1:${port}/2`));
    expect(err.message).toBe(`KEYPOOL_STATE: cannot reach Redis at redis://:***@127.0.0.1:${port}/2 (ECONNREFUSED); is redis-server running there?`);
  });

  it("a start that fails leaves nothing behind that would keep the process running", async () => {
    // Timers and sockets made during the failed starts and still open afterwards.
    const open = new Map<number, string>();
    const hook = createHook({
      init: (id, type) => void (type === "Timeout" || type === "TCPWRAP" ? open.set(id, type) : undefined),
      destroy: (id) => void open.delete(id),
    }).enable();
    try {
      const port = await freeLoopbackPort();
      await startError(settingsFor(`redis://127.0.0.1:${port}`));
      await startError(settingsFor(redis.url), "99.0.0");
      const made = [...open.keys()];
      // Past the sockets' own close, well inside ioredis's 2 s wait for a socket to close.
      await new Promise((resolve) => setTimeout(resolve, 200));
      expect(made.filter((id) => open.has(id)).map((id) => open.get(id))).toEqual([]);
    } finally {
      hook.disable();
    }
  });

  it("a Redis older than the scripts need stops the start, naming both versions", async () => {
    const err = await startError(settingsFor(redis.url), "99.0.0");
    expect(err.message).toMatch(/^KEYPOOL_STATE: Redis at redis:\/\/127\.0\.0\.1:\d+\/? is version \d+\.\d+\.\d+; keypool's scripts need Redis 99\.0\.0 or newer$/);
  });

  it("Redis stopped: commands fail at once, availability and the log follow; Redis back: ready again by itself", async () => {
    const { lines, logger } = recordingLogger();
    const connection: RedisConnection = await openRedisConnection(settingsFor(redis.url), { logger });
    const seen: boolean[] = [];
    connection.watchAvailable((available) => seen.push(available));
    try {
      await connection.client.set("k", "1");
      await redis.stop("SIGKILL");
      await until(() => !connection.available);
      const started = Date.now();
      await expect(connection.client.get("k")).rejects.toThrow();
      // Well inside the 500 ms command timeout: nothing waited for Redis.
      expect(Date.now() - started).toBeLessThan(250);
      expect(lines.some((l) => l.level === "error" && /Redis connection lost/.test(l.message))).toBe(true);

      await redis.start();
      await until(() => connection.available);
      expect(await connection.client.ping()).toBe("PONG");
      expect(seen).toEqual([false, true]);
      expect(lines.filter((l) => /Redis connection/.test(l.message)).map((l) => l.level)).toEqual(["error", "info"]);
    } finally {
      await connection.close();
    }
  });

  it("Redis hung (SIGSTOP): a command fails within KEYPOOL_REDIS_TIMEOUT instead of waiting", async () => {
    const { logger } = recordingLogger();
    const connection = await openRedisConnection(settingsFor(redis.url, { timeoutMs: 300 }), { logger });
    try {
      redis.pause();
      const started = Date.now();
      await expect(connection.client.get("k")).rejects.toThrow(/timed out/i);
      const elapsed = Date.now() - started;
      expect(elapsed).toBeGreaterThanOrEqual(250);
      expect(elapsed).toBeLessThan(1_500);
    } finally {
      redis.resume();
      await connection.close();
    }
  });
});

it("reconnects back off from 50 ms, doubling, capped at 2 s plus jitter", () => {
  expect([1, 2, 3, 6, 7, 50].map((n) => reconnectDelayMs(n, () => 0))).toEqual([50, 100, 200, 1600, 2000, 2000]);
  expect(reconnectDelayMs(50, () => 1)).toBe(3000);
});

it("compares versions part by part", () => {
  expect(versionAtLeast("7.0.15", "6.2.0")).toBe(true);
  expect(versionAtLeast("6.2.0", "6.2.0")).toBe(true);
  expect(versionAtLeast("6.0.20", "6.2.0")).toBe(false);
  expect(versionAtLeast("10.0.0", "6.2.0")).toBe(true);
});
