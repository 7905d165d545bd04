/**
 * Failures of real Redis commands, sorted: Redis gone, hung or refusing becomes UNAVAILABLE with a
 * bounded reason (no URL, no password); a bug (an unknown command, a script's runtime error) does
 * not, so that it stays INTERNAL and is logged.
 */
import { ErrorCode } from "../../../src/domain/errors";
import { openRedisConnection, type RedisConnection } from "../../../src/redis/redis-connection";
import { redisUnavailable } from "../../../src/redis/redis-failure";
import { parseRedisUrl } from "../../../src/redis/redis-url";
import { startRedisServer, type RedisServer } from "../../support/redis-server";

const PASSWORD = "failure-test-password";
const quiet = { info: () => {}, warn: () => {}, error: () => {} };
let redis: RedisServer;
let connection: RedisConnection;

const failureOf = async (command: Promise<unknown>): Promise<unknown> => command.then(() => new Error("the command succeeded"), (err: unknown) => err);

beforeAll(async () => {
  redis = await startRedisServer({ password: PASSWORD });
  connection = await openRedisConnection({ target: parseRedisUrl(redis.url, "KEYPOOL_STATE"), caFile: "", timeoutMs: 300 }, { logger: quiet });
});
afterAll(async () => {
  await connection.close();
  await redis.close();
});

const expectUnavailable = (err: unknown, reason: RegExp) => {
  const mapped = redisUnavailable(err);
  expect(mapped?.code).toBe(ErrorCode.Unavailable);
  expect(mapped?.message).toMatch(reason);
  expect(mapped?.message).not.toContain(PASSWORD);
  expect(mapped?.message).not.toContain(String(redis.port));
  expect(mapped!.message.length).toBeLessThan(200);
};

it("an unknown command and a script's runtime error are bugs, not unavailability", async () => {
  expect(redisUnavailable(await failureOf(connection.client.call("NOSUCHCOMMAND")))).toBeUndefined();
  await connection.client.set("text", "abc");
  expect(redisUnavailable(await failureOf(connection.client.eval("return redis.call('INCR', KEYS[1])", 1, "text")))).toBeUndefined();
  expect(redisUnavailable(new TypeError("x is undefined"))).toBeUndefined();
});

it("Redis out of memory is UNAVAILABLE", async () => {
  await connection.client.config("SET", "maxmemory", "1");
  try {
    expectUnavailable(await failureOf(connection.client.set("big", "x".repeat(1000))), /^the pool's Redis is unavailable: Redis is out of memory \(maxmemory\); retry later or on another replica$/);
  } finally {
    await connection.client.config("SET", "maxmemory", "0");
  }
});

it("Redis hung is UNAVAILABLE after the timeout", async () => {
  redis.pause();
  try {
    expectUnavailable(await failureOf(connection.client.get("k")), /did not answer within KEYPOOL_REDIS_TIMEOUT/);
  } finally {
    redis.resume();
  }
});

it("Redis gone is UNAVAILABLE at once", async () => {
  await redis.stop("SIGKILL");
  await new Promise((resolve) => setTimeout(resolve, 50));
  expectUnavailable(await failureOf(connection.client.get("k")), /not connected to Redis|connection to Redis/);
  await redis.start();
  // Back on its own: afterAll closes a live connection (on a lost one ioredis's disconnect()
  // would wait 2 s for the old socket's close, which came long ago, holding the jest worker).
  const deadline = Date.now() + 10_000;
  while (!connection.available && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 20));
  expect(connection.available).toBe(true);
});
