import { providerInfo } from "../../../../src/domain/providers";
import { planReport, type ReportLimits } from "../../../../src/domain/rate-limit-report";
import type { ProviderId } from "../../../../src/domain/types";
import { makePool, T0 } from "../helpers";
import { credential } from "./fixtures";

const LIMITS: ReportLimits = { maxResetMs: 10_000, defaultCooldownMs: 10_000, maxCooldownMs: 60_000 };
const plan = (provider: ProviderId, status: number, headers: Record<string, string>) =>
  planReport(status, headers, providerInfo(provider).rateLimitHeaders, T0, LIMITS);

describe("what each provider's answers say, by the rules of hold and cooldown", () => {
  it.each([
    // Azure OpenAI: remaining counts on every answer; a 429 says how long in ms.
    ["azure", 429, { "retry-after-ms": "1500", "retry-after": "2" }, { kind: "cooldown", waitMs: 1500 }],
    ["azure", 429, { "Retry-After": "7" }, { kind: "cooldown", waitMs: 7000 }],
    ["azure", 200, { "x-ratelimit-remaining-requests": "99", "x-ratelimit-remaining-tokens": "4000" }, { kind: "hold", waitMs: 0 }],
    ["azure", 200, { "x-ratelimit-remaining-requests": "0", "x-ratelimit-reset-requests": "3s" }, { kind: "hold", waitMs: 3000 }],
    ["azure", 200, { "x-ratelimit-remaining-widgets": "0" }, { kind: "none" }],
    // Google AI: retry-after on a 429, nothing on success.
    ["google", 429, { "retry-after": "12" }, { kind: "cooldown", waitMs: 12_000 }],
    ["google", 429, {}, { kind: "cooldown", waitMs: 10_000 }],
    ["google", 200, { "x-ratelimit-remaining-requests": "0", "x-ratelimit-reset-requests": "5s" }, { kind: "none" }],
    // Mistral: remaining counts, no reset.
    ["mistral", 200, { "x-ratelimit-remaining-tokens-minute": "5000", "x-ratelimit-remaining-req-minute": "3" }, { kind: "hold", waitMs: 0 }],
    ["mistral", 200, { "x-ratelimit-remaining-tokens-minute": "0" }, { kind: "none" }],
    ["mistral", 429, { "retry-after": "4" }, { kind: "cooldown", waitMs: 4000 }],
    // AWS Bedrock: a ThrottlingException is a 429 with no headers; OpenAI-style headers are not its.
    ["bedrock", 429, {}, { kind: "cooldown", waitMs: 10_000 }],
    ["bedrock", 200, { "x-ratelimit-remaining-requests": "0", "x-ratelimit-reset-requests": "5s" }, { kind: "none" }],
    ["bedrock", 401, {}, { kind: "revoke" }],
    // GCP Vertex: RESOURCE_EXHAUSTED is a 429 with no headers.
    ["vertex", 429, {}, { kind: "cooldown", waitMs: 10_000 }],
    ["vertex", 429, { "retry-after": "600" }, { kind: "cooldown", waitMs: 60_000 }],
    ["vertex", 200, {}, { kind: "none" }],
  ] as [ProviderId, number, Record<string, string>, unknown][])("%s %i %j → %j", (provider, status, headers, effect) => {
    expect(plan(provider, status, headers)).toEqual(effect);
  });
});

describe("reports change the reported key only, whatever its provider", () => {
  it("a 429 on a Bedrock key cools it down and leaves the Vertex and Anthropic keys of the same family ready", () => {
    const { pool, clock } = makePool();
    const [bedrock, vertex, anthropic] = pool.addKeys([
      { provider: "bedrock", key: credential("bedrock") },
      { provider: "vertex", key: credential("vertex") },
      { provider: "anthropic", key: credential("anthropic") },
    ]).keyHashes;
    pool.reportRateLimit({ keyHash: bedrock, statusCode: 429, headers: {} });
    const byHash = new Map(pool.listKeys({}).map((k) => [k.keyHash, k]));
    expect(byHash.get(bedrock)!.cooldownUntil).toBe(clock.now() + 10_000);
    expect(byHash.get(vertex)!.readyAt).toBe(0);
    expect(byHash.get(anthropic)!.readyAt).toBe(0);
    // The Bedrock family is now served only after the cooldown.
    expect(pool.lockout({ model: "anthropic.claude-3-5-sonnet-20240620-v1:0" }).lockoutMs).toBe(10_000);
    expect(pool.lockout({ model: "claude-3-5-sonnet-v2@20241022", provider: "vertex" }).lockoutMs).toBe(0);
  });

  it("Azure's retry-after-ms sets the cooldown of that deployment's key", () => {
    const { pool, clock } = makePool();
    const [east, west] = pool.addKeys([
      { provider: "azure", key: "contoso-east:gpt4o:k1", modelFamilies: ["gpt4o"] },
      { provider: "azure", key: "contoso-west:gpt4o:k2", modelFamilies: ["gpt4o"] },
    ]).keyHashes;
    pool.reportRateLimit({ keyHash: west, statusCode: 429, headers: { "retry-after-ms": "2500" } });
    const lease = pool.lease({ model: "gpt-4o", provider: "azure" });
    expect(lease.keyHash).toBe(east);
    expect(pool.getKey(west)!.cooldownUntil).toBe(clock.now() + 2500);
  });
});
