/** KEYPOOL_STATE=redis://...: what the URL says, and that no error or shown form carries the password. */
import { isRedisUrl, parseRedisUrl, redactRedisUrl } from "../../../src/redis/redis-url";

const V = "KEYPOOL_STATE";

it("reads host, port, database, user and password, percent-decoded", () => {
  expect(parseRedisUrl("redis://app:p%40ss%3Aword@redis.internal:6380/3", V)).toEqual({
    tls: false,
    host: "redis.internal",
    port: 6380,
    db: 3,
    username: "app",
    password: "p@ss:word",
    shown: "redis://app:***@redis.internal:6380/3",
  });
});

it("defaults to port 6379 and database 0; rediss:// means TLS; a password without a user is the default user's", () => {
  expect(parseRedisUrl("rediss://:hunter2@[::1]", V)).toMatchObject({ tls: true, host: "::1", port: 6379, db: 0, password: "hunter2" });
  expect(parseRedisUrl("redis://127.0.0.1:7000", V)).toEqual({ tls: false, host: "127.0.0.1", port: 7000, db: 0, shown: "redis://127.0.0.1:7000" });
});

it("tells redis URLs from state files and memory, typos of the scheme included", () => {
  expect(isRedisUrl("redis://h:1")).toBe(true);
  expect(isRedisUrl(" REDISS://h:1")).toBe(true);
  expect(isRedisUrl("redis:/h")).toBe(true);
  expect(isRedisUrl("./data/keypool.db")).toBe(false);
  expect(isRedisUrl("memory")).toBe(false);
  expect(isRedisUrl("/var/lib/redis-state.db")).toBe(false);
});

it.each([
  ["redis://", /KEYPOOL_STATE: .*not a URL|names no host/],
  ["redis:/onlyone", /KEYPOOL_STATE: .*names no host|not a URL/],
  ["redis://:s3cret-pw@host:99999", /KEYPOOL_STATE: .*not a URL|port/],
  ["redis://:s3cret-pw@host:6379/x", /KEYPOOL_STATE: .*database number/],
  ["redis://:s3cret-pw@host:6379/16", /KEYPOOL_STATE: .*past \/15/],
  ["redis://:s3cret-pw@host:6379/0?tls=1", /KEYPOOL_STATE: .*query/],
  ["redis://:%zz-s3cret-pw@host", /KEYPOOL_STATE: .*percent-encoding/],
])("%s stops the start naming KEYPOOL_STATE, without the password", (raw, message) => {
  let error: Error | undefined;
  try {
    parseRedisUrl(raw, V);
  } catch (err) {
    error = err as Error;
  }
  expect(error?.message).toMatch(message);
  expect(error?.message).not.toContain("s3cret-pw");
});

it("the redacted form hides the password, even of text that is not a URL", () => {
  expect(redactRedisUrl("redis://u:topsecret@h:1/2")).toBe("redis://u:***@h:1/2");
  expect(redactRedisUrl("redis://u:top secret@@h:1")).not.toContain("secret");
  expect(redactRedisUrl("rediss://h:1")).toBe("rediss://h:1");
});
