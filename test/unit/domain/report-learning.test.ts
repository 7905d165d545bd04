/**
 * ReportRateLimit learns what a proxy's upstream error says about the key itself: a 404
 * model_not_found takes that model's family off the key (it stays ACTIVE for the others), a 429
 * insufficient_quota makes it OVER_QUOTA.
 */
import { ErrorCode } from "../../../src/domain/errors";
import { makePool, poolError } from "./helpers";

describe("ReportRateLimit learns from upstream errors", () => {
  const setup = () => {
    const t = makePool();
    const [keyHash] = t.pool.addKeys([{ provider: "openai", key: "sk-a", modelFamilies: ["turbo", "gpt4", "gpt4o"] }]).keyHashes;
    return { ...t, keyHash };
  };

  it("404 model_not_found takes the model's family off the key, which stays ACTIVE for the rest", () => {
    const { pool, keyHash, events } = setup();
    pool.reportRateLimit({ keyHash, statusCode: 404, headers: {}, errorCode: "model_not_found", errorType: "invalid_request_error", model: "gpt-4o-2024-08-06" });
    expect(pool.getKey(keyHash)).toMatchObject({ state: "active", modelFamilies: ["turbo", "gpt4"] });
    expect(events.at(-1)).toMatchObject({ type: "updated", cause: "family_withdrawn" });
    poolError(() => pool.lease({ model: "gpt-4o" }), ErrorCode.FailedPrecondition);
    expect(pool.lease({ model: "gpt-4" }).keyHash).toBe(keyHash);
  });

  it("404 without model_not_found, or without the model, changes no family", () => {
    const { pool, keyHash } = setup();
    pool.reportRateLimit({ keyHash, statusCode: 404, headers: {}, errorCode: "not_found", model: "gpt-4o" });
    pool.reportRateLimit({ keyHash, statusCode: 404, headers: {}, errorCode: "model_not_found" });
    expect(pool.getKey(keyHash)!.modelFamilies).toEqual(["turbo", "gpt4", "gpt4o"]);
  });

  it("404 model_not_found for a model no family maps is INVALID_ARGUMENT", () => {
    const { pool, keyHash } = setup();
    poolError(
      () => pool.reportRateLimit({ keyHash, statusCode: 404, headers: {}, errorCode: "model_not_found", model: "no-such-model" }),
      ErrorCode.InvalidArgument,
    );
  });

  it.each([
    ["type", { errorType: "insufficient_quota" }],
    ["code", { errorCode: "insufficient_quota" }],
    ["billing", { errorType: "billing_not_active" }],
  ])("429 insufficient_quota (%s) makes the key OVER_QUOTA", (_, fields) => {
    const { pool, keyHash, events } = setup();
    pool.reportRateLimit({ keyHash, statusCode: 429, headers: {}, ...fields });
    expect(pool.getKey(keyHash)).toMatchObject({ state: "over_quota" });
    expect(pool.getKey(keyHash)!.stateReason).toMatch(/429 (insufficient_quota|billing_not_active)/);
    expect(events.at(-1)).toMatchObject({ type: "updated", cause: "over_quota" });
    poolError(() => pool.lease({ model: "gpt-4" }), ErrorCode.FailedPrecondition);
  });

  it("a 429 of another type is a rate limit: a cooldown, the key stays ACTIVE", () => {
    const { pool, keyHash, clock } = setup();
    pool.reportRateLimit({ keyHash, statusCode: 429, headers: {}, errorType: "requests", errorCode: "rate_limit_exceeded" });
    expect(pool.getKey(keyHash)).toMatchObject({ state: "active", cooldownUntil: clock.now() + 10_000 });
  });

  it("an operator's DISABLED key stays DISABLED after an insufficient_quota report", () => {
    const { pool, keyHash } = setup();
    pool.disableKey(keyHash);
    pool.reportRateLimit({ keyHash, statusCode: 429, headers: {}, errorType: "insufficient_quota" });
    expect(pool.getKey(keyHash)!.state).toBe("disabled");
  });

  it("error fields over 256 bytes are INVALID_ARGUMENT", () => {
    const { pool, keyHash } = setup();
    poolError(() => pool.reportRateLimit({ keyHash, statusCode: 429, headers: {}, errorType: "x".repeat(257) }), ErrorCode.InvalidArgument);
  });
});
