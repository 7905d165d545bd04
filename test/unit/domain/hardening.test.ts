/**
 * The pool's answers to hostile input (issue #18): bounded echoes, a model cache that no name can
 * fool, keys with control characters, and a cap on waiting leases over all families.
 */
import { ErrorCode } from "../../../src/domain/errors";
import { ECHO_LIMIT_BYTES, quoted, truncated } from "../../../src/domain/echo";
import type { KeySpec } from "../../../src/domain/types";
import { makePool, poolError, poolRejection } from "./helpers";

const oai = (key: string, extra: Partial<KeySpec> = {}): KeySpec => ({ provider: "openai", key, ...extra });

describe("errors repeat client values only up to a bound", () => {
  it("a 1 MB unknown family name is cut, with a marker naming its size", () => {
    const { pool } = makePool();
    const family = "f".repeat(1024 * 1024);
    const error = poolError(() => pool.addKeys([oai("sk-1", { modelFamilies: [family] })]), ErrorCode.InvalidArgument);
    expect(Buffer.byteLength(error.message)).toBeLessThan(1024);
    expect(error.message).toContain(`"${"f".repeat(ECHO_LIMIT_BYTES)}"…[truncated: 1048576 bytes in all]`);
    expect(error.message).toContain("is not a openai model family");
  });

  it("unknown hashes, header names and providers are cut too", () => {
    const { pool } = makePool();
    const long = "x".repeat(100_000);
    expect(poolError(() => pool.disableKey(long), ErrorCode.NotFound).message.length).toBeLessThan(400);
    const [h] = pool.addKeys([oai("sk-1")]).keyHashes;
    const report = () => pool.reportRateLimit({ keyHash: h, statusCode: 200, headers: { [long]: "1" } });
    expect(poolError(report, ErrorCode.InvalidArgument).message.length).toBeLessThan(400);
    const provider = () => pool.addKeys([{ provider: long as "openai", key: "sk-2" }]);
    expect(poolError(provider, ErrorCode.InvalidArgument).message.length).toBeLessThan(400);
  });

  it("cuts on a character boundary, and leaves short values whole", () => {
    expect(truncated("é".repeat(100), 5)).toBe("éé…[truncated: 200 bytes in all]");
    expect(truncated("short", 5)).toBe("short");
    expect(quoted("a\nb")).toBe('"a\\nb"');
  });
});

describe("the model cache", () => {
  it("a name that spells another entry's cache key is validated like any other", () => {
    const { pool } = makePool();
    pool.addKeys([oai("sk-1", { modelFamilies: ["gpt4o"] })]);
    expect(pool.lease({ model: "gpt-4o", provider: "openai" }).modelFamily).toBe("gpt4o");
    poolError(() => pool.lease({ model: "openai\u0000gpt-4o" }), ErrorCode.InvalidArgument);
    poolError(() => pool.lockout({ model: "openai\u0000gpt-4o" }), ErrorCode.InvalidArgument);
  });

  it("a 263-byte name made of a provider, NUL and a cached 256-byte model gets the length error", () => {
    const { pool } = makePool({ reuseDelayMs: 0 });
    pool.addKeys([oai("sk-1", { modelFamilies: ["gpt4o"] })]);
    const cached = "gpt-4o-" + "a".repeat(249);
    expect(pool.lease({ model: cached, provider: "openai" }).modelFamily).toBe("gpt4o");
    const model = `openai\u0000${cached}`;
    expect(Buffer.byteLength(model)).toBe(263);
    const error = poolError(() => pool.lease({ model }), ErrorCode.InvalidArgument);
    expect(error.message).toBe("model is 263 bytes long; the limit is 256 bytes");
  });
});

describe("key secrets", () => {
  it.each([
    ["a newline", "sk-abc\ndef", "U+000A"],
    ["a NUL", "sk-abc\u0000def", "U+0000"],
    ["a trailing carriage return", "sk-abcdef\r", "U+000D"],
    ["DEL", "sk-abc\u007fdef", "U+007F"],
  ])("a key with %s is refused, and the message never shows the key", (_what, key, code) => {
    const { pool } = makePool();
    const error = poolError(() => pool.addKeys([oai(key)]), ErrorCode.InvalidArgument);
    expect(error.message).toContain(code);
    expect(error.message).not.toContain("abc");
    expect(pool.size).toBe(0);
  });
});

describe("waiting leases", () => {
  it("a cap over all families refuses the next waiter with ResourceExhausted and a retry delay", async () => {
    const { pool } = makePool({ maxWaiters: 2 });
    pool.addKeys([oai("sk-1"), oai("sk-2", { modelFamilies: ["gpt4o"] })]);
    pool.lease({ model: "gpt-4" });
    pool.lease({ model: "gpt-4o" });
    const a = pool.leaseWhenReady({ model: "gpt-4", maxWaitMs: 5000 });
    const b = pool.leaseWhenReady({ model: "gpt-4o", maxWaitMs: 5000 });
    const refused = await poolRejection(pool.leaseWhenReady({ model: "gpt-4", maxWaitMs: 5000 }), ErrorCode.ResourceExhausted);
    expect(refused.message).toMatch(/^2 lease requests are already waiting for keys/);
    expect(refused.retryAfterMs).toBe(1000);
    pool.close();
    await poolRejection(a, ErrorCode.Unavailable);
    await poolRejection(b, ErrorCode.Unavailable);
  });
});
