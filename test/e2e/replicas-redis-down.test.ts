/**
 * A replica and its Redis, from outside: configuration errors stop the start naming KEYPOOL_STATE
 * (and never print the password); Redis stopped makes calls answer UNAVAILABLE well within their
 * deadline and health NOT_SERVING on both ports; Redis started again brings both back by itself.
 */
import { Code, ConnectError } from "@connectrpc/connect";
import { HealthCheckResponse_ServingStatus as ServingStatus } from "../../gen/ts/grpc/health/v1/health_pb";
import { ensureBuilt, runServerExpectingFailure } from "../support/child-server";
import { freeLoopbackPort, startRedisServer, type RedisServer } from "../support/redis-server";
import { eventually, startReplicas, type Replicas } from "../support/replicas";

jest.setTimeout(90_000);

const PASSWORD = "e2e-redis-password-do-not-print";
const KEY = "sk-redis-down-test-key-0001";
const MODEL = "gpt-3.5-turbo";

beforeAll(() => ensureBuilt(), 180_000);

describe("configuration errors stop the start, naming KEYPOOL_STATE", () => {
  let redis: RedisServer;
  beforeAll(async () => {
    redis = await startRedisServer({ password: PASSWORD });
  });
  afterAll(async () => {
    await redis.close();
  });

  const failing = async (env: Record<string, string>) => {
    const result = await runServerExpectingFailure({ OPENAI_KEY: KEY, ...env });
    const printed = result.stdout + result.stderr;
    expect(printed).not.toContain(PASSWORD);
    return { code: result.code, stderr: result.stderr };
  };

  it("a URL that does not parse: exit 2", async () => {
    const { code, stderr } = await failing({ KEYPOOL_STATE: `redis://:${PASSWORD}@127.0.0.1:${redis.port}/x` });
    expect(code).toBe(2);
    expect(stderr).toMatch(/keypool: configuration error: KEYPOOL_STATE: redis:\/\/:\*\*\*@127\.0\.0\.1:\d+\/x: the path must be a database number/);
  });

  it("a bad prefix: exit 2 naming KEYPOOL_REDIS_PREFIX", async () => {
    const { code, stderr } = await failing({ KEYPOOL_STATE: redis.url, KEYPOOL_REDIS_PREFIX: "{pool}" });
    expect(code).toBe(2);
    expect(stderr).toMatch(/KEYPOOL_REDIS_PREFIX: "\{pool\}" must be 1 to 64 letters/);
  });

  it("nothing listening at the URL: exit 1, cannot reach", async () => {
    const port = await freeLoopbackPort();
    const { code, stderr } = await failing({ KEYPOOL_STATE: `redis://:${PASSWORD}@127.0.0.1:${port}` });
    expect(code).toBe(1);
    expect(stderr).toContain(`KEYPOOL_STATE: cannot reach Redis at redis://:***@127.0.0.1:${port} (ECONNREFUSED)`);
  });

  it("a wrong password: exit 1, WRONGPASS", async () => {
    const { code, stderr } = await failing({ KEYPOOL_STATE: `redis://:not-${PASSWORD}@127.0.0.1:${redis.port}` });
    expect(code).toBe(1);
    expect(stderr).toMatch(/KEYPOOL_STATE: Redis at redis:\/\/:\*\*\*@127\.0\.0\.1:\d+ refused the user name or password \(WRONGPASS\)/);
  });

  it("no password where Redis needs one: exit 1, NOAUTH", async () => {
    const { code, stderr } = await failing({ KEYPOOL_STATE: `redis://127.0.0.1:${redis.port}` });
    expect(code).toBe(1);
    expect(stderr).toMatch(/KEYPOOL_STATE: Redis at redis:\/\/127\.0\.0\.1:\d+ requires a password \(NOAUTH\)/);
  });
});

describe("Redis stopped and started again", () => {
  let redis: RedisServer;
  let fleet: Replicas;

  beforeAll(async () => {
    redis = await startRedisServer({ password: PASSWORD, appendfsync: "always" });
    fleet = await startReplicas(redis, 1, { OPENAI_KEY: KEY, KEYPOOL_REUSE_DELAY: "0", KEYPOOL_LOG_LEVEL: "debug" });
  });
  afterAll(async () => {
    await fleet.close();
    await redis.close();
  });

  it("calls answer UNAVAILABLE fast and health is NOT_SERVING on both ports; then everything recovers by itself", async () => {
    const [replica] = fleet.replicas;
    expect((await replica!.health.check({})).status).toBe(ServingStatus.SERVING);
    await replica!.pool.lease({ model: MODEL });

    await redis.stop("SIGKILL");
    await eventually(async () => (await replica!.health.check({})).status === ServingStatus.NOT_SERVING, "main-port health NOT_SERVING");
    expect((await replica!.native.health.check({})).status).toBe(ServingStatus.NOT_SERVING);
    const healthz = await fetch(`${replica!.server.url}/healthz`);
    expect(healthz.status).toBe(503);

    for (const call of [
      () => replica!.pool.lease({ model: MODEL }, { timeoutMs: 2000 }),
      () => replica!.native.pool.lease({ model: MODEL }, { timeoutMs: 2000 }),
      () => replica!.pool.incrementUsage({ keyHash: "openai-0000000000000000", model: MODEL, inputTokens: 1n }, { timeoutMs: 2000 }),
      () => replica!.admin.disableKey({ keyHash: "openai-0000000000000000" }, { timeoutMs: 2000 }),
    ]) {
      const started = Date.now();
      const err = await call().then(
        () => undefined,
        (e: unknown) => ConnectError.from(e),
      );
      expect(err?.code).toBe(Code.Unavailable);
      expect(err?.rawMessage).toMatch(/^the pool's Redis is unavailable: /);
      expect(err?.rawMessage).not.toContain(PASSWORD);
      expect(err?.rawMessage).not.toContain(String(redis.port));
      expect(Date.now() - started).toBeLessThan(1500);
    }

    await redis.start();
    await eventually(async () => (await replica!.health.check({})).status === ServingStatus.SERVING, "health SERVING again", 15_000);
    expect((await replica!.native.health.check({})).status).toBe(ServingStatus.SERVING);
    expect((await fetch(`${replica!.server.url}/healthz`)).status).toBe(200);
    const lease = await replica!.pool.lease({ model: MODEL });
    expect(lease.key).toBe(KEY);

    // The log said it, once each way, without the password.
    const { stdout, stderr } = replica!.server.output();
    expect(stdout + stderr).not.toContain(PASSWORD);
    const messages = replica!.server.logs.map((l) => String(l.msg));
    expect(messages.filter((m) => m.startsWith("Redis connection lost"))).toHaveLength(1);
    expect(messages.filter((m) => m.startsWith("Redis connection is back"))).toHaveLength(1);
  });
});
