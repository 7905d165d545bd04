/**
 * KeyPool against the rules of docs/, one describe per section, on a ManualClock (no sleeps).
 */
import { createHash } from "node:crypto";
import { inspect } from "node:util";
import { ErrorCode } from "../../../src/domain/errors";
import { FamilyTable } from "../../../src/domain/model-families";
import type { KeySpec, PoolEvent } from "../../../src/domain/types";
import { T0, flush, makePool, poolError, poolRejection } from "./helpers";

const sha16 = (s: string) => createHash("sha256").update(s).digest("hex").slice(0, 16);
const oai = (key: string, extra: Partial<KeySpec> = {}): KeySpec => ({ provider: "openai", key, ...extra });

describe("Keys", () => {
  it("hashes a key as the provider prefix and 16 hex digits of its SHA-256", () => {
    const { pool } = makePool();
    const { keyHashes } = pool.addKeys([oai("sk-one"), { provider: "anthropic", key: "sk-ant-two" }]);
    expect(keyHashes).toEqual([`oai-${sha16("sk-one")}`, `ant-${sha16("sk-ant-two")}`]);
  });

  it("hashes an organization clone over key + organization id, as a separate key", () => {
    const { pool } = makePool();
    const r = pool.addKeys([oai("sk-one"), oai("sk-one", { organizationId: "org-7" })]);
    expect(r.keyHashes[1]).toBe(`oai-${sha16("sk-oneorg-7")}`);
    expect(r.added).toBe(2);
    expect(pool.getKey(r.keyHashes[1])!.organizationId).toBe("org-7");
  });

  it("8 hex digits collide in a pool of 200,000 keys; 16 do not", () => {
    const hex = Array.from({ length: 200_000 }, (_, i) => createHash("sha256").update(`sk-${i}`).digest("hex"));
    expect(new Set(hex.map((h) => h.slice(0, 8))).size).toBeLessThan(200_000);
    expect(new Set(hex.map((h) => h.slice(0, 16))).size).toBe(200_000);
  });

  it("a pool of 50,000 keys gets 50,000 distinct oai-<16 hex> hashes", () => {
    const { pool } = makePool();
    const specs = Array.from({ length: 50_000 }, (_, i) => oai(`sk-${i}`));
    const r = pool.addKeys(specs);
    expect(new Set(r.keyHashes).size).toBe(50_000);
    expect(r.keyHashes.every((h) => /^oai-[0-9a-f]{16}$/.test(h))).toBe(true);
  });

  it("refuses a second, different key whose hash collides, with a clear error and no change", () => {
    const { pool, events } = makePool({ keyHasher: (provider) => (provider === "openai" ? "oai-0000000000000000" : "ant-1") });
    pool.addKeys([oai("sk-first")]);
    const before = pool.listKeys();
    events.length = 0;
    const error = poolError(() => pool.addKeys([oai("sk-second")]), ErrorCode.AlreadyExists);
    expect(error.message).toContain("oai-0000000000000000");
    expect(error.message).toContain("collision");
    expect(error.message).not.toContain("sk-second");
    expect(error.message).not.toContain("sk-first");
    expect(pool.listKeys()).toEqual(before);
    expect(events).toEqual([]);
    // Within one call as well.
    const { pool: other } = makePool({ keyHasher: () => "oai-0000000000000000" });
    poolError(() => other.addKeys([oai("sk-a"), oai("sk-b")]), ErrorCode.AlreadyExists);
    expect(other.size).toBe(0);
  });

  it("a new OpenAI key serves turbo and gpt4; a new Anthropic key every Claude family", () => {
    const { pool } = makePool();
    const [o, a] = pool.addKeys([oai("sk-1"), { provider: "anthropic", key: "sk-ant" }]).keyHashes;
    expect(pool.getKey(o)!.modelFamilies).toEqual(["turbo", "gpt4"]);
    expect(pool.getKey(a)!.modelFamilies).toEqual(["claude", "claude-haiku", "claude-sonnet", "claude-opus"]);
  });

  it("keeps the spec's families, trial flag and organization", () => {
    const { pool } = makePool();
    const [h] = pool.addKeys([oai("sk-1", { modelFamilies: ["gpt4o", "gpt4o"], trial: true })]).keyHashes;
    expect(pool.getKey(h)).toMatchObject({ modelFamilies: ["gpt4o"], trial: true, state: "active", organizationId: "" });
  });

  it("counts duplicates, returns one hash per request key in order, and keeps the first key's state", () => {
    const { pool } = makePool();
    const [h] = pool.addKeys([oai("sk-1")]).keyHashes;
    pool.lease({ model: "gpt-4" });
    const r = pool.addKeys([oai("sk-2"), oai(" sk-1 "), oai("sk-2")]);
    expect(r).toEqual({ keyHashes: [r.keyHashes[0], h, r.keyHashes[0]], added: 1, duplicates: 2 });
    expect(pool.getKey(h)!.leaseCount).toBe(1);
  });

  it("rejects bad specs as InvalidArgument, all or nothing, never quoting the key", () => {
    const { pool } = makePool();
    const big = "sk-" + "x".repeat(1100);
    const e1 = poolError(() => pool.addKeys([oai("sk-ok"), oai(big)]), ErrorCode.InvalidArgument);
    expect(e1.message).toContain("keys[1]");
    expect(e1.message).toContain("1024");
    expect(e1.message).not.toContain("xxxx");
    expect(pool.size).toBe(0);
    expect(poolError(() => pool.addKeys([oai("sk-1", { modelFamilies: ["gpt-9000"] })]), ErrorCode.InvalidArgument).message).toContain(
      "gpt-9000",
    );
    poolError(() => pool.addKeys([oai("   ")]), ErrorCode.InvalidArgument);
    poolError(() => pool.addKeys([{ provider: "cohere" as never, key: "k" }]), ErrorCode.InvalidArgument);
    // Exactly 1 KiB is fine.
    expect(pool.addKeys([oai("k".repeat(1024))]).added).toBe(1);
  });

  it("removes a key at run time; an unknown hash is NotFound naming it", () => {
    const { pool, events } = makePool();
    const [h] = pool.addKeys([oai("sk-1")]).keyHashes;
    events.length = 0;
    pool.removeKey(h);
    expect(pool.size).toBe(0);
    expect(events).toMatchObject([{ type: "removed", keyHash: h, provider: "openai", modelFamilies: ["turbo", "gpt4"] }]);
    expect(poolError(() => pool.removeKey(h), ErrorCode.NotFound).message).toContain(h);
    poolError(() => pool.lease({ model: "gpt-4" }), ErrorCode.FailedPrecondition);
  });

  it("NotFound never echoes a value that is not shaped like a hash (a key sent by mistake)", () => {
    const { pool } = makePool();
    pool.addKeys([oai("sk-proj-AbCdEf123456")]);
    const error = poolError(() => pool.reportRateLimit({ keyHash: "sk-proj-AbCdEf123456", statusCode: 200, headers: {} }), ErrorCode.NotFound);
    expect(error.message).not.toContain("AbCdEf");
    expect(poolError(() => pool.disableKey("oai-00ff"), ErrorCode.NotFound).message).toContain('"oai-00ff"');
  });
});

describe("Model families", () => {
  const { pool } = makePool();
  it.each([
    ["gpt-3.5-turbo", "openai", "turbo"],
    ["gpt-3.5-turbo-0125", "openai", "turbo"],
    ["gpt-3.5-turbo-instruct", "openai", "turbo"],
    ["gpt-4o-mini", "openai", "turbo"],
    ["gpt-4o-mini-2024-07-18", "openai", "turbo"],
    ["text-embedding-ada-002", "openai", "turbo"],
    ["text-embedding-3-large", "openai", "turbo"],
    ["gpt-4", "openai", "gpt4"],
    ["gpt-4-0613", "openai", "gpt4"],
    ["gpt-4-0314", "openai", "gpt4"],
    ["gpt-4-32k", "openai", "gpt4-32k"],
    ["gpt-4-32k-0613", "openai", "gpt4-32k"],
    ["gpt-4-turbo", "openai", "gpt4-turbo"],
    ["gpt-4-turbo-2024-04-09", "openai", "gpt4-turbo"],
    ["gpt-4-1106-preview", "openai", "gpt4-turbo"],
    ["gpt-4-0125-preview", "openai", "gpt4-turbo"],
    ["gpt-4-vision-preview", "openai", "gpt4-turbo"],
    ["gpt-4o", "openai", "gpt4o"],
    ["gpt-4o-2024-08-06", "openai", "gpt4o"],
    ["chatgpt-4o-latest", "openai", "gpt4o"],
    ["gpt-4.1", "openai", "gpt41"],
    ["gpt-4.1-2025-04-14", "openai", "gpt41"],
    ["gpt-4.1-mini", "openai", "gpt41-mini"],
    ["gpt-4.1-nano", "openai", "gpt41-nano"],
    ["gpt-4.5-preview", "openai", "gpt45"],
    ["gpt-5", "openai", "gpt5"],
    ["gpt-5-mini", "openai", "gpt5-mini"],
    ["gpt-5-nano", "openai", "gpt5-nano"],
    ["o1", "openai", "o1"],
    ["o1-preview", "openai", "o1"],
    ["o1-mini", "openai", "o1-mini"],
    ["o3", "openai", "o3"],
    ["o3-mini", "openai", "o3-mini"],
    ["o4-mini", "openai", "o4-mini"],
    ["dall-e-3", "openai", "dall-e"],
    ["claude-3-opus-20240229", "anthropic", "claude-opus"],
    ["claude-opus-4-1-20250805", "anthropic", "claude-opus"],
    ["claude-3-5-sonnet-20241022", "anthropic", "claude-sonnet"],
    ["claude-sonnet-4-20250514", "anthropic", "claude-sonnet"],
    ["claude-3-haiku-20240307", "anthropic", "claude-haiku"],
    ["claude-2.1", "anthropic", "claude"],
    ["claude-instant-1.2", "anthropic", "claude"],
  ])("%s → %s/%s (provider inferred)", (model, provider, family) => {
    expect(pool.resolveModel(model)).toEqual({ provider, family });
  });

  it("an unknown model is InvalidArgument naming it and how to map it, never a default family", () => {
    const { pool } = makePool();
    pool.addKeys([oai("sk-1")]);
    const error = poolError(() => pool.lease({ model: "llama-3-70b" }), ErrorCode.InvalidArgument);
    expect(error.message).toContain('"llama-3-70b"');
    expect(error.message).toContain("KEYPOOL_MODEL_FAMILIES");
    poolError(() => pool.lockout({ model: "gpt-4-but-not-really" }), ErrorCode.InvalidArgument);
    poolError(() => pool.incrementUsage({ keyHash: pool.listKeys()[0].keyHash, model: "mystery", inputTokens: 1, outputTokens: 1 }), ErrorCode.InvalidArgument);
  });

  it("a provider that does not match the model is InvalidArgument naming both", () => {
    const { pool } = makePool();
    const error = poolError(() => pool.lease({ model: "gpt-4o", provider: "anthropic" }), ErrorCode.InvalidArgument);
    expect(error.message).toContain("gpt-4o");
    expect(error.message).toContain("openai");
    expect(error.message).toContain("anthropic");
  });

  it("an empty or over-long model is InvalidArgument", () => {
    const { pool } = makePool();
    poolError(() => pool.lease({ model: "" }), ErrorCode.InvalidArgument);
    expect(poolError(() => pool.lease({ model: "gpt-4o-" + "x".repeat(251) }), ErrorCode.InvalidArgument).message).toContain("256");
  });

  it("operator rows extend the table and override it (they are tried first)", () => {
    const families = FamilyTable.builtIn().withOperatorRules([
      { provider: "openai", pattern: /^ft:gpt-4o-mini/, family: "turbo" },
      { provider: "openai", pattern: /^gpt-4o$/, family: "gpt4" },
      { provider: "anthropic", pattern: /^claude-next/, family: "claude-opus" },
    ]);
    const { pool } = makePool({ families });
    expect(pool.resolveModel("ft:gpt-4o-mini:acme::abc")).toEqual({ provider: "openai", family: "turbo" });
    expect(pool.resolveModel("gpt-4o")).toEqual({ provider: "openai", family: "gpt4" });
    expect(pool.resolveModel("gpt-4o-2024-08-06")).toEqual({ provider: "openai", family: "gpt4o" });
    expect(pool.resolveModel("claude-next")).toEqual({ provider: "anthropic", family: "claude-opus" });
  });

  it("ALLOWED_MODEL_FAMILIES: another family is PermissionDenied naming it (after model checks)", () => {
    const { pool } = makePool({ allowedFamilies: new Set(["turbo"]) });
    pool.addKeys([oai("sk-1")]);
    expect(pool.lease({ model: "gpt-3.5-turbo" }).modelFamily).toBe("turbo");
    const error = poolError(() => pool.lease({ model: "gpt-4" }), ErrorCode.PermissionDenied);
    expect(error.message).toContain("gpt4");
    poolError(() => pool.lease({ model: "no-such-model" }), ErrorCode.InvalidArgument);
    // PermissionDenied comes before "no key": nobody learns which families have keys.
    poolError(() => pool.lease({ model: "o3" }), ErrorCode.PermissionDenied);
  });
});

describe("Choosing a key (Lease)", () => {
  it("spends trial keys first", () => {
    const { pool } = makePool();
    const [, trial] = pool.addKeys([oai("sk-paid"), oai("sk-trial", { trial: true })]).keyHashes;
    expect(pool.lease({ model: "gpt-4" }).keyHash).toBe(trial);
  });

  it("never gives a trial key to an embedding model", () => {
    const { pool, clock } = makePool();
    const [paid, trial] = pool.addKeys([oai("sk-paid"), oai("sk-trial", { trial: true })]).keyHashes;
    expect(pool.lease({ model: "text-embedding-3-small" }).keyHash).toBe(paid);
    // The paid key is held now; the trial key is ready but not eligible.
    const busy = poolError(() => pool.lease({ model: "text-embedding-ada-002" }), ErrorCode.ResourceExhausted);
    expect(busy.retryAfterMs).toBe(1000);
    expect(pool.lockout({ model: "text-embedding-ada-002" })).toEqual({ lockoutMs: 1000, noActiveKeys: false });
    expect(pool.lease({ model: "gpt-3.5-turbo" }).keyHash).toBe(trial);
    clock.advance(1000);
    pool.removeKey(paid);
    const none = poolError(() => pool.lease({ model: "text-embedding-ada-002" }), ErrorCode.FailedPrecondition);
    expect(none.message).toContain("turbo");
    expect(pool.lockout({ model: "text-embedding-ada-002" })).toEqual({ lockoutMs: 0, noActiveKeys: true });
  });

  it("prefers keys without gpt4-32k, then the least recently leased, then key_hash", () => {
    const { pool, clock } = makePool({ reuseDelayMs: 0 });
    const hashes = pool.addKeys([
      oai("sk-a", { modelFamilies: ["gpt4", "gpt4-32k"] }),
      oai("sk-b"),
      oai("sk-c"),
    ]).keyHashes;
    const [with32k, b, c] = hashes;
    const [first, second] = [b, c].sort();
    expect(pool.lease({ model: "gpt-4" }).keyHash).toBe(first); // tie on lastUsed (never): key_hash
    clock.advance(1);
    expect(pool.lease({ model: "gpt-4" }).keyHash).toBe(second); // least recently leased
    clock.advance(1);
    expect(pool.lease({ model: "gpt-4" }).keyHash).toBe(first);
    pool.disableKey(b);
    pool.disableKey(c);
    expect(pool.lease({ model: "gpt-4" }).keyHash).toBe(with32k); // only when nothing else is left
  });

  it("with no ACTIVE key for the family: FailedPrecondition naming the family", () => {
    const { pool } = makePool();
    pool.addKeys([oai("sk-1")]);
    const error = poolError(() => pool.lease({ model: "gpt-4o" }), ErrorCode.FailedPrecondition);
    expect(error.message).toContain("gpt4o");
  });

  it("when every eligible key is waiting: ResourceExhausted carrying the lockout", () => {
    const { pool, clock } = makePool();
    pool.addKeys([oai("sk-1")]);
    pool.lease({ model: "gpt-4" });
    clock.advance(400);
    const error = poolError(() => pool.lease({ model: "gpt-4" }), ErrorCode.ResourceExhausted);
    expect(error.retryAfterMs).toBe(600);
    expect(error.message).toContain("600 ms");
    clock.advance(600);
    expect(pool.lease({ model: "gpt-4" })).toBeDefined();
  });
});

describe("Lease with max_wait (waiters)", () => {
  it("serves waiters first come, first served as keys become ready", async () => {
    const { pool, clock } = makePool();
    const [k1, k2] = pool.addKeys([oai("sk-1"), oai("sk-2")]).keyHashes;
    pool.lease({ model: "gpt-4" });
    clock.advance(100);
    pool.lease({ model: "gpt-4" });
    const order: string[] = [];
    const waits = ["a", "b", "c"].map((name) =>
      pool.leaseWhenReady({ model: "gpt-4", maxWaitMs: 5000 }).then((l) => order.push(`${name}:${l.keyHash}`)),
    );
    clock.advance(900); // the first key is ready at +1000
    await flush();
    expect(order).toEqual([`a:${[k1, k2].sort()[0]}`]);
    clock.advance(100); // the second at +1100
    await flush();
    expect(order).toHaveLength(2);
    clock.advance(900); // the first again at +2000
    await Promise.all(waits);
    expect(order.map((o) => o[0])).toEqual(["a", "b", "c"]);
    pool.close();
  });

  it("answers at once when a key is ready", async () => {
    const { pool } = makePool();
    pool.addKeys([oai("sk-1")]);
    await expect(pool.leaseWhenReady({ model: "gpt-4", maxWaitMs: 1000 })).resolves.toMatchObject({ key: "sk-1" });
  });

  it("gives up at its deadline with ResourceExhausted and the lockout, leaving the queue", async () => {
    const { pool, clock } = makePool({ reuseDelayMs: 10_000 });
    pool.addKeys([oai("sk-1")]);
    pool.lease({ model: "gpt-4" });
    const waiting = pool.leaseWhenReady({ model: "gpt-4", maxWaitMs: 3000 });
    const late = pool.leaseWhenReady({ model: "gpt-4", maxWaitMs: 20_000 });
    clock.advance(3000);
    const error = await poolRejection(waiting, ErrorCode.ResourceExhausted);
    expect(error.retryAfterMs).toBe(7000);
    clock.advance(7000);
    // The key goes to the waiter still there, not to the one that left.
    await expect(late).resolves.toMatchObject({ key: "sk-1" });
    expect(clock.pendingTimers()).toBe(1); // only the lease expiry timer remains
    pool.close();
    expect(clock.pendingTimers()).toBe(0);
  });

  it("a waiter whose signal aborts leaves the queue at once with Cancelled", async () => {
    const { pool, clock } = makePool();
    pool.addKeys([oai("sk-1")]);
    pool.lease({ model: "gpt-4" });
    const controller = new AbortController();
    const first = pool.leaseWhenReady({ model: "gpt-4", maxWaitMs: 5000, signal: controller.signal });
    const second = pool.leaseWhenReady({ model: "gpt-4", maxWaitMs: 5000 });
    controller.abort();
    await poolRejection(first, ErrorCode.Cancelled);
    clock.advance(1000);
    await expect(second).resolves.toMatchObject({ key: "sk-1" });
    // Already aborted: Cancelled without queueing.
    const gone = new AbortController();
    gone.abort();
    await poolRejection(pool.leaseWhenReady({ model: "gpt-4", maxWaitMs: 5000, signal: gone.signal }), ErrorCode.Cancelled);
    pool.close();
  });

  it("serves waiters when a key is added, or a report makes one ready", async () => {
    const { pool } = makePool({ reuseDelayMs: 60_000 });
    const [h] = pool.addKeys([oai("sk-1")]).keyHashes;
    const lease = pool.lease({ model: "gpt-4" });
    const w1 = pool.leaseWhenReady({ model: "gpt-4", maxWaitMs: 5000 });
    const w2 = pool.leaseWhenReady({ model: "gpt-4", maxWaitMs: 5000 });
    pool.addKeys([oai("sk-2")]);
    await expect(w1).resolves.toMatchObject({ key: "sk-2" });
    pool.reportRateLimit({ keyHash: h, statusCode: 200, headers: { "x-ratelimit-remaining-requests": "9" }, leaseId: lease.leaseId });
    await expect(w2).resolves.toMatchObject({ key: "sk-1" });
    pool.close();
  });

  it("fails waiters with FailedPrecondition when their last key is disabled", async () => {
    const { pool } = makePool();
    const [h] = pool.addKeys([oai("sk-1")]).keyHashes;
    pool.lease({ model: "gpt-4" });
    const waiting = pool.leaseWhenReady({ model: "gpt-4", maxWaitMs: 5000 });
    pool.disableKey(h);
    await poolRejection(waiting, ErrorCode.FailedPrecondition);
    pool.close();
  });

  it("a full queue answers ResourceExhausted", async () => {
    const { pool } = makePool({ maxWaitersPerFamily: 2 });
    pool.addKeys([oai("sk-1")]);
    pool.lease({ model: "gpt-4" });
    const a = pool.leaseWhenReady({ model: "gpt-4", maxWaitMs: 5000 });
    const b = pool.leaseWhenReady({ model: "gpt-4", maxWaitMs: 5000 });
    const error = await poolRejection(pool.leaseWhenReady({ model: "gpt-4", maxWaitMs: 5000 }), ErrorCode.ResourceExhausted);
    expect(error.retryAfterMs).toBe(1000);
    // Another family has its own queue.
    pool.addKeys([oai("sk-2", { modelFamilies: ["gpt4o"] })]);
    await expect(pool.leaseWhenReady({ model: "gpt-4o", maxWaitMs: 5000 })).resolves.toBeDefined();
    pool.close();
    await poolRejection(a, ErrorCode.Unavailable);
    await poolRejection(b, ErrorCode.Unavailable);
  });

  it("max_wait 0 answers at once; validation errors come before waiting", async () => {
    const { pool } = makePool();
    pool.addKeys([oai("sk-1")]);
    pool.lease({ model: "gpt-4" });
    expect((await poolRejection(pool.leaseWhenReady({ model: "gpt-4", maxWaitMs: 0 }), ErrorCode.ResourceExhausted)).retryAfterMs).toBe(1000);
    await poolRejection(pool.leaseWhenReady({ model: "nope", maxWaitMs: 1000 }), ErrorCode.InvalidArgument);
    await poolRejection(pool.leaseWhenReady({ model: "o3", maxWaitMs: 1000 }), ErrorCode.FailedPrecondition);
  });

  it("close() rejects waiters with Unavailable and cancels every timer", async () => {
    const { pool, clock } = makePool();
    pool.addKeys([oai("sk-1")]);
    pool.lease({ model: "gpt-4" });
    const waiting = pool.leaseWhenReady({ model: "gpt-4", maxWaitMs: 5000 });
    expect(clock.pendingTimers()).toBeGreaterThan(0);
    pool.close();
    await poolRejection(waiting, ErrorCode.Unavailable);
    expect(clock.pendingTimers()).toBe(0);
    poolError(() => pool.lease({ model: "gpt-4" }), ErrorCode.Unavailable);
  });
});

describe("What a lease does to a key", () => {
  it("sets last_used, lease_count, in_flight, a lease id with expiry, and holds the key for the reuse delay", () => {
    const { pool, clock } = makePool({ reuseDelayMs: 1500, leaseTtlMs: 60_000 });
    const [h] = pool.addKeys([oai("sk-1", { organizationId: "org-1" })]).keyHashes;
    clock.advance(10);
    const lease = pool.lease({ model: "gpt-4-0613" });
    expect(lease).toMatchObject({
      key: "sk-1",
      keyHash: h,
      provider: "openai",
      modelFamily: "gpt4",
      organizationId: "org-1",
      leaseExpiresAt: T0 + 10 + 60_000,
    });
    expect(lease.leaseId).toMatch(/^[0-9a-z]+-[0-9a-f]{16}$/);
    expect(pool.getKey(h)).toMatchObject({
      lastUsed: T0 + 10,
      leaseCount: 1,
      inFlight: 1,
      holdUntil: T0 + 10 + 1500,
      readyAt: T0 + 10 + 1500,
      cooldownUntil: 0,
      rateLimitedAt: 0, // a hold is not a rate limit
    });
  });

  it("ends a lease when IncrementUsage names it, once", () => {
    const { pool, clock } = makePool({ reuseDelayMs: 0 });
    const [h] = pool.addKeys([oai("sk-1")]).keyHashes;
    const l1 = pool.lease({ model: "gpt-4" });
    pool.lease({ model: "gpt-4" });
    expect(pool.getKey(h)!.inFlight).toBe(2);
    pool.incrementUsage({ keyHash: h, model: "gpt-4", inputTokens: 1, outputTokens: 1, leaseId: l1.leaseId });
    expect(pool.getKey(h)!.inFlight).toBe(1);
    pool.incrementUsage({ keyHash: h, model: "gpt-4", inputTokens: 1, outputTokens: 1, leaseId: l1.leaseId });
    expect(pool.getKey(h)!.inFlight).toBe(1);
    clock.advance(600_000); // the other lease expires; the ended one does not count twice
    expect(pool.getKey(h)!.inFlight).toBe(0);
  });

  it("ends a lease only by its exact id: ids differ in their random part and a changed digit names no lease", () => {
    const { pool } = makePool({ reuseDelayMs: 0 });
    const [h] = pool.addKeys([oai("sk-1")]).keyHashes;
    const ids = Array.from({ length: 50 }, () => pool.lease({ model: "gpt-4" }).leaseId);
    expect(new Set(ids.map((id) => id.split("-")[1])).size).toBe(50);
    const id = ids[0]!;
    const flip = (i: number) => `${id.slice(0, i)}${id[i] === "0" ? "1" : "0"}${id.slice(i + 1)}`;
    const [seq, random] = id.split("-");
    const wrong = [flip(id.length - 1), flip(seq!.length + 1), `${seq}-${random!.slice(1)}`, `${seq}-${random}0`, `0${id}`];
    for (const leaseId of wrong) pool.incrementUsage({ keyHash: h, model: "gpt-4", inputTokens: 1, outputTokens: 0, leaseId });
    expect(pool.getKey(h)!.inFlight).toBe(50);
    pool.incrementUsage({ keyHash: h, model: "gpt-4", inputTokens: 1, outputTokens: 0, leaseId: id });
    expect(pool.getKey(h)!.inFlight).toBe(49);
  });

  it("ends a lease at its TTL, with a lease_ended event", () => {
    const { pool, clock, events } = makePool({ leaseTtlMs: 10_000 });
    const [h] = pool.addKeys([oai("sk-1")]).keyHashes;
    pool.lease({ model: "gpt-4" });
    events.length = 0;
    clock.advance(9_999);
    expect(pool.getKey(h)!.inFlight).toBe(1);
    clock.advance(1);
    expect(pool.getKey(h)!.inFlight).toBe(0);
    expect(events).toMatchObject([{ type: "updated", cause: "lease_ended" }]);
    expect(events[0]!.type === "updated" && events[0]!.key.status()).toEqual(pool.getKey(h));
    expect(clock.pendingTimers()).toBe(0);
  });

  it("an unknown or expired lease id in IncrementUsage is no error; the usage counts", () => {
    const { pool, clock } = makePool({ leaseTtlMs: 1000 });
    const [h] = pool.addKeys([oai("sk-1")]).keyHashes;
    const lease = pool.lease({ model: "gpt-4" });
    clock.advance(1000);
    pool.incrementUsage({ keyHash: h, model: "gpt-4", inputTokens: 5, outputTokens: 6, leaseId: lease.leaseId });
    pool.incrementUsage({ keyHash: h, model: "gpt-4", inputTokens: 5, outputTokens: 6, leaseId: "no-such-lease" });
    expect(pool.getKey(h)).toMatchObject({ inFlight: 0, promptCount: 2, usage: { gpt4: { inputTokens: 10, outputTokens: 12, prompts: 2 } } });
  });

  it("lease ids are unique and cannot be guessed: a forged id ends nothing", () => {
    const { pool } = makePool({ reuseDelayMs: 0 });
    const [h] = pool.addKeys([oai("sk-1")]).keyHashes;
    const ids = Array.from({ length: 100 }, () => pool.lease({ model: "gpt-4" }).leaseId);
    expect(new Set(ids).size).toBe(100);
    const [seq, random] = ids[0].split("-");
    const forged = `${seq}-${random === "0".repeat(16) ? "1".repeat(16) : "0".repeat(16)}`;
    pool.incrementUsage({ keyHash: h, model: "gpt-4", inputTokens: 1, outputTokens: 1, leaseId: forged });
    expect(pool.getKey(h)!.inFlight).toBe(100);
    pool.incrementUsage({ keyHash: h, model: "gpt-4", inputTokens: 1, outputTokens: 1, leaseId: ids[0] });
    expect(pool.getKey(h)!.inFlight).toBe(99);
  });

  it("a lease id of another key does not end that key's lease", () => {
    const { pool } = makePool();
    const [a, b] = pool.addKeys([oai("sk-1"), oai("sk-2")]).keyHashes;
    const l1 = pool.lease({ model: "gpt-4" });
    const other = l1.keyHash === a ? b : a;
    pool.incrementUsage({ keyHash: other, model: "gpt-4", inputTokens: 1, outputTokens: 1, leaseId: l1.leaseId });
    expect(pool.getKey(l1.keyHash)!.inFlight).toBe(1);
  });
});

describe("Reports (ReportRateLimit)", () => {
  function leased(options = {}) {
    const made = makePool(options);
    const [h] = made.pool.addKeys([oai("sk-1")]).keyHashes;
    made.pool.lease({ model: "gpt-4" });
    return { ...made, h };
  }

  it("2xx with every remaining count above 0: ready now (the reuse hold is replaced)", () => {
    const { pool, h } = leased();
    const r = pool.reportRateLimit({ keyHash: h, statusCode: 200, headers: { "x-ratelimit-remaining-requests": "10", "x-ratelimit-remaining-tokens": "5000" } });
    expect(r.readyAt).toBe(T0);
    expect(pool.lockout({ model: "gpt-4" }).lockoutMs).toBe(0);
    expect(pool.lease({ model: "gpt-4" }).keyHash).toBe(h);
  });

  it("2xx with an exhausted dimension holds for its reset; 6m0s is six minutes (capped by KEYPOOL_MAX_RESET)", () => {
    const { pool, h } = leased({ maxResetMs: 3_600_000 });
    const r = pool.reportRateLimit({ keyHash: h, statusCode: 200, headers: { "x-ratelimit-remaining-tokens": "0", "x-ratelimit-reset-tokens": "6m0s" } });
    expect(r.readyAt).toBe(T0 + 360_000);
    const { pool: capped, h: h2 } = leased();
    expect(capped.reportRateLimit({ keyHash: h2, statusCode: 200, headers: { "x-ratelimit-remaining-tokens": "0", "x-ratelimit-reset-tokens": "6m0s" } }).readyAt).toBe(
      T0 + 10_000,
    );
  });

  it("a hold is replaced by each successful report, longer or shorter", () => {
    const { pool, h, clock } = leased();
    pool.reportRateLimit({ keyHash: h, statusCode: 200, headers: { "x-ratelimit-remaining-requests": "0", "x-ratelimit-reset-requests": "8s" } });
    expect(pool.getKey(h)!.holdUntil).toBe(T0 + 8000);
    clock.advance(1000);
    pool.reportRateLimit({ keyHash: h, statusCode: 200, headers: { "x-ratelimit-reset-requests": "2s" } });
    expect(pool.getKey(h)!.holdUntil).toBe(T0 + 3000);
  });

  it("with no usable rate-limit header nothing changes and no event is sent", () => {
    const { pool, h, events } = leased();
    const before = pool.getKey(h);
    events.length = 0;
    pool.reportRateLimit({ keyHash: h, statusCode: 200, headers: { "content-type": "application/json", "x-ratelimit-reset-tokens": "soon" } });
    expect(pool.getKey(h)).toEqual(before);
    expect(events).toEqual([]);
  });

  it("429 sets rate_limited_at and a cooldown: retry-after-ms, retry-after (seconds or date), resets, default, capped", () => {
    const cases: [Record<string, string>, number][] = [
      [{ "retry-after-ms": "1500" }, 1500],
      [{ "Retry-After": "3" }, 3000],
      [{ "retry-after": new Date(T0 + 42_000).toUTCString() }, 42_000],
      [{ "x-ratelimit-remaining-requests": "0", "x-ratelimit-reset-requests": "20s" }, 20_000],
      [{}, 10_000],
      [{ "retry-after": "600" }, 60_000],
    ];
    for (const [headers, wait] of cases) {
      const { pool, h } = leased();
      const r = pool.reportRateLimit({ keyHash: h, statusCode: 429, headers });
      expect(pool.getKey(h)).toMatchObject({ rateLimitedAt: T0, cooldownUntil: T0 + wait, readyAt: Math.max(T0 + wait, T0 + 1000) });
      expect(r.readyAt).toBe(Math.max(T0 + wait, T0 + 1000));
    }
  });

  it("a later 429 never shortens a cooldown", () => {
    const { pool, h, clock } = leased();
    pool.reportRateLimit({ keyHash: h, statusCode: 429, headers: { "retry-after": "30" } });
    clock.advance(1000);
    pool.reportRateLimit({ keyHash: h, statusCode: 429, headers: { "retry-after": "1" } });
    expect(pool.getKey(h)).toMatchObject({ cooldownUntil: T0 + 30_000, rateLimitedAt: T0 + 1000 });
    pool.reportRateLimit({ keyHash: h, statusCode: 429, headers: { "retry-after": "60" } });
    expect(pool.getKey(h)!.cooldownUntil).toBe(T0 + 61_000);
  });

  it("hold and cooldown are separate: a success after a 429 does not end the cooldown", () => {
    const { pool, h, clock } = leased();
    pool.reportRateLimit({ keyHash: h, statusCode: 429, headers: { "retry-after": "30" } });
    clock.advance(5000);
    pool.reportRateLimit({ keyHash: h, statusCode: 200, headers: { "x-ratelimit-remaining-requests": "50" } });
    expect(pool.getKey(h)).toMatchObject({ holdUntil: T0 + 5000, cooldownUntil: T0 + 30_000, readyAt: T0 + 30_000 });
    expect(pool.lockout({ model: "gpt-4" }).lockoutMs).toBe(25_000);
    clock.advance(25_000);
    expect(pool.lease({ model: "gpt-4" }).keyHash).toBe(h);
  });

  it("401 revokes the key, with a reason saying so; it leaves selection", () => {
    const { pool, h, events } = leased();
    events.length = 0;
    pool.reportRateLimit({ keyHash: h, statusCode: 401, headers: {} });
    expect(pool.getKey(h)!.state).toBe("revoked");
    expect(pool.getKey(h)!.stateReason).toContain("401");
    expect(events.map((e) => (e.type === "updated" ? e.cause : e.type))).toEqual(["revoked"]);
    poolError(() => pool.lease({ model: "gpt-4" }), ErrorCode.FailedPrecondition);
  });

  it("other statuses change nothing but the headers' effect", () => {
    const { pool, h } = leased();
    pool.reportRateLimit({ keyHash: h, statusCode: 500, headers: {} });
    expect(pool.getKey(h)).toMatchObject({ state: "active", holdUntil: T0 + 1000, cooldownUntil: 0, rateLimitedAt: 0 });
    pool.reportRateLimit({ keyHash: h, statusCode: 503, headers: { "x-ratelimit-remaining-requests": "1" } });
    expect(pool.getKey(h)).toMatchObject({ state: "active", holdUntil: T0, cooldownUntil: 0, rateLimitedAt: 0 });
  });

  it("reads Anthropic's RFC 3339 headers for Anthropic keys", () => {
    const { pool } = makePool();
    const [h] = pool.addKeys([{ provider: "anthropic", key: "sk-ant-1" }]).keyHashes;
    pool.lease({ model: "claude-3-5-sonnet-20241022" });
    pool.reportRateLimit({
      keyHash: h,
      statusCode: 200,
      headers: { "anthropic-ratelimit-output-tokens-remaining": "0", "anthropic-ratelimit-output-tokens-reset": "2026-01-01T00:00:04Z" },
    });
    expect(pool.getKey(h)!.holdUntil).toBe(T0 + 4000);
  });

  it("rejects over 64 headers, a header value over 8 KiB, a bad status, an unknown key", () => {
    const { pool, h } = leased();
    const many = Object.fromEntries(Array.from({ length: 65 }, (_, i) => [`h${i}`, "v"]));
    expect(poolError(() => pool.reportRateLimit({ keyHash: h, statusCode: 200, headers: many }), ErrorCode.InvalidArgument).message).toContain("64");
    const big = { "x-ratelimit-reset-tokens": "1".repeat(8193) };
    expect(poolError(() => pool.reportRateLimit({ keyHash: h, statusCode: 200, headers: big }), ErrorCode.InvalidArgument).message).toContain(
      "8 KiB",
    );
    poolError(() => pool.reportRateLimit({ keyHash: h, statusCode: 99, headers: {} }), ErrorCode.InvalidArgument);
    const nf = poolError(() => pool.reportRateLimit({ keyHash: "oai-ffffffffffffffff", statusCode: 200, headers: {} }), ErrorCode.NotFound);
    expect(nf.message).toContain("oai-ffffffffffffffff");
    // 64 headers, each exactly 8 KiB, are fine.
    const limit = Object.fromEntries(Array.from({ length: 64 }, (_, i) => [`h${i}`, "v".repeat(8192)]));
    expect(() => pool.reportRateLimit({ keyHash: h, statusCode: 200, headers: limit })).not.toThrow();
  });
});

describe("Lockout (GetLockoutPeriod)", () => {
  it("is 0 when a key is ready, 0 with noActiveKeys when none exists, else the time to the earliest ready_at", () => {
    const { pool, clock } = makePool();
    expect(pool.lockout({ model: "gpt-4" })).toEqual({ lockoutMs: 0, noActiveKeys: true });
    const [a, b] = pool.addKeys([oai("sk-1"), oai("sk-2")]).keyHashes;
    expect(pool.lockout({ model: "gpt-4" })).toEqual({ lockoutMs: 0, noActiveKeys: false });
    pool.lease({ model: "gpt-4" });
    clock.advance(300);
    pool.lease({ model: "gpt-4" });
    expect(pool.lockout({ model: "gpt-4" })).toEqual({ lockoutMs: 700, noActiveKeys: false });
    pool.reportRateLimit({ keyHash: a, statusCode: 429, headers: { "retry-after": "20" } });
    pool.reportRateLimit({ keyHash: b, statusCode: 429, headers: { "retry-after": "10" } });
    expect(pool.lockout({ model: "gpt-4" }).lockoutMs).toBe(10_000);
    pool.disableKey(a);
    pool.disableKey(b);
    expect(pool.lockout({ model: "gpt-4" })).toEqual({ lockoutMs: 0, noActiveKeys: true });
  });

  it("agrees with Lease: a lease succeeds exactly when the lockout is 0, and its RetryInfo is the lockout", () => {
    const { pool, clock } = makePool();
    pool.addKeys([oai("sk-1"), oai("sk-2", { trial: true }), oai("sk-3", { modelFamilies: ["gpt4", "gpt4-32k"] })]);
    for (let i = 0; i < 40; i++) {
      const { lockoutMs } = pool.lockout({ model: "gpt-4" });
      let leased = true;
      try {
        pool.lease({ model: "gpt-4" });
      } catch (error) {
        leased = false;
        expect((error as { retryAfterMs?: number }).retryAfterMs).toBe(lockoutMs);
      }
      expect(leased).toBe(lockoutMs === 0);
      clock.advance(137);
    }
  });
});

describe("Usage (IncrementUsage)", () => {
  it("counts prompts and tokens by the model's family", () => {
    const { pool } = makePool();
    const [h] = pool.addKeys([oai("sk-1")]).keyHashes;
    pool.incrementUsage({ keyHash: h, model: "gpt-4", inputTokens: 100, outputTokens: 20 });
    pool.incrementUsage({ keyHash: h, model: "gpt-3.5-turbo", inputTokens: 7, outputTokens: 3 });
    pool.incrementUsage({ keyHash: h, model: "gpt-4-0613", inputTokens: 1, outputTokens: 2 });
    expect(pool.getKey(h)).toMatchObject({
      promptCount: 3,
      usage: { gpt4: { inputTokens: 101, outputTokens: 22, prompts: 2 }, turbo: { inputTokens: 7, outputTokens: 3, prompts: 1 } },
    });
  });

  it("rejects token counts above 10^9, negative or fractional counts, unknown keys", () => {
    const { pool } = makePool();
    const [h] = pool.addKeys([oai("sk-1")]).keyHashes;
    expect(poolError(() => pool.incrementUsage({ keyHash: h, model: "gpt-4", inputTokens: 1e9 + 1, outputTokens: 0 }), ErrorCode.InvalidArgument).message).toContain(
      "10^9",
    );
    poolError(() => pool.incrementUsage({ keyHash: h, model: "gpt-4", inputTokens: 0, outputTokens: -1 }), ErrorCode.InvalidArgument);
    poolError(() => pool.incrementUsage({ keyHash: h, model: "gpt-4", inputTokens: 0.5, outputTokens: 0 }), ErrorCode.InvalidArgument);
    poolError(() => pool.incrementUsage({ keyHash: "oai-0", model: "gpt-4", inputTokens: 0, outputTokens: 0 }), ErrorCode.NotFound);
    pool.incrementUsage({ keyHash: h, model: "gpt-4", inputTokens: 1e9, outputTokens: 1e9 });
    expect(pool.getKey(h)!.usage.gpt4.inputTokens).toBe(1e9);
  });
});

describe("Disabling", () => {
  it("DisableKey sets DISABLED by default, with a reason, and takes the key out of selection; EnableKey brings it back", () => {
    const { pool } = makePool();
    const [h] = pool.addKeys([oai("sk-1")]).keyHashes;
    expect(pool.disableKey(h)).toMatchObject({ state: "disabled", stateReason: "disabled by an operator" });
    poolError(() => pool.lease({ model: "gpt-4" }), ErrorCode.FailedPrecondition);
    expect(pool.lockout({ model: "gpt-4" }).noActiveKeys).toBe(true);
    expect(pool.enableKey(h)).toMatchObject({ state: "active", stateReason: "" });
    expect(pool.lease({ model: "gpt-4" }).keyHash).toBe(h);
  });

  it("takes REVOKED and OVER_QUOTA with the caller's reason; rejects other states", () => {
    const { pool } = makePool();
    const [h] = pool.addKeys([oai("sk-1")]).keyHashes;
    expect(pool.disableKey(h, "over_quota", "insufficient_quota")).toMatchObject({ state: "over_quota", stateReason: "insufficient_quota" });
    expect(pool.disableKey(h, "revoked", "invalid_api_key")).toMatchObject({ state: "revoked", stateReason: "invalid_api_key" });
    poolError(() => pool.disableKey(h, "active" as never), ErrorCode.InvalidArgument);
    poolError(() => pool.disableKey("oai-nope"), ErrorCode.NotFound);
  });

  it("nothing but EnableKey revives a REVOKED key", () => {
    const { pool, clock } = makePool();
    const [h] = pool.addKeys([oai("sk-1")]).keyHashes;
    pool.reportRateLimit({ keyHash: h, statusCode: 401, headers: {} });
    clock.advance(24 * 3_600_000);
    pool.reportRateLimit({ keyHash: h, statusCode: 200, headers: { "x-ratelimit-remaining-requests": "100" } });
    pool.addKeys([oai("sk-1")]); // re-adding is a duplicate, not a revival
    pool.incrementUsage({ keyHash: h, model: "gpt-4", inputTokens: 1, outputTokens: 1 });
    expect(pool.getKey(h)!.state).toBe("revoked");
    poolError(() => pool.lease({ model: "gpt-4" }), ErrorCode.FailedPrecondition);
    pool.enableKey(h);
    expect(pool.lease({ model: "gpt-4" }).keyHash).toBe(h);
  });
});

describe("Change feed", () => {
  const causes = (events: PoolEvent[]) => events.map((e) => (e.type === "updated" ? `${e.cause}` : `removed`));

  it("publishes exactly one event per change, with a view of the key's whole new status", () => {
    const { pool, clock, events } = makePool({ leaseTtlMs: 5000 });
    // Each event's view shows the key as it is at that moment.
    const mismatches: string[] = [];
    const states: string[] = [];
    pool.changes.subscribe((e) => {
      if (e.type === "updated") states.push(e.key.state);
      if (e.type === "updated" && JSON.stringify(e.key.status()) !== JSON.stringify(pool.getKey(e.key.keyHash))) mismatches.push(e.cause);
      if (e.type === "removed" && pool.getKey(e.keyHash)) mismatches.push("removed");
    });
    const [a, b] = pool.addKeys([oai("sk-1"), oai("sk-2"), oai("sk-1")]).keyHashes;
    expect(causes(events)).toEqual(["added", "added"]);
    events.length = 0;
    const lease = pool.lease({ model: "gpt-4" });
    pool.reportRateLimit({ keyHash: lease.keyHash, statusCode: 429, headers: {} });
    pool.incrementUsage({ keyHash: lease.keyHash, model: "gpt-4", inputTokens: 1, outputTokens: 1, leaseId: lease.leaseId });
    pool.lease({ model: "gpt-4" });
    clock.advance(5000);
    pool.disableKey(a);
    pool.enableKey(a);
    pool.enableKey(a); // no change: no event
    pool.removeKey(b);
    expect(causes(events)).toEqual(["leased", "reported", "usage", "leased", "lease_ended", "disabled", "enabled", "removed"]);
    expect(mismatches).toEqual([]);
    expect(states.slice(-2)).toEqual(["disabled", "active"]);
  });

  it("never carries a secret, and hands out fresh objects", () => {
    const { pool, events } = makePool();
    const [h] = pool.addKeys([oai("sk-super-secret", { organizationId: "org" })]).keyHashes;
    pool.lease({ model: "gpt-4" });
    pool.incrementUsage({ keyHash: h, model: "gpt-4", inputTokens: 1, outputTokens: 1 });
    // A view copies the key only when asked, into a new object each time.
    const view = events.flatMap((e) => (e.type === "updated" ? [e.key] : []))[0]!;
    expect(view.status()).not.toBe(view.status());
    expect(view.status()).toEqual(pool.getKey(h));
    const status = pool.getKey(h)!;
    status.usage.gpt4.inputTokens = 999;
    status.modelFamilies.push("gpt4o");
    expect(pool.getKey(h)!.usage.gpt4.inputTokens).toBe(1);
    expect(pool.getKey(h)!.modelFamilies).toEqual(["turbo", "gpt4"]);
    expect(pool.secretOf(h)).toBe("sk-super-secret");
    pool.removeKey(h);
    const text = JSON.stringify(events) + JSON.stringify(pool.listKeys()) + inspect(events, { depth: 10, showHidden: true });
    expect(text).not.toContain("sk-super-secret");
  });
});

describe("A rejected call leaves the pool exactly as it was", () => {
  it.each<[string, (pool: ReturnType<typeof makePool>["pool"], h: string) => unknown]>([
    ["lease of an unknown model", (p) => p.lease({ model: "unknown-model" })],
    ["lease with the wrong provider", (p) => p.lease({ model: "gpt-4", provider: "anthropic" })],
    ["lease of a disallowed family", (p) => p.lease({ model: "gpt-4o-mini" })],
    ["lease with nothing ready", (p) => p.lease({ model: "gpt-4" })],
    ["lease with no key", (p) => p.lease({ model: "o3" })],
    ["report with too many headers", (p, h) => p.reportRateLimit({ keyHash: h, statusCode: 429, headers: Object.fromEntries(Array.from({ length: 65 }, (_, i) => [`x${i}`, "1"])) })],
    ["report for an unknown key", (p) => p.reportRateLimit({ keyHash: "oai-1234", statusCode: 429, headers: {} })],
    ["usage with too many tokens", (p, h) => p.incrementUsage({ keyHash: h, model: "gpt-4", inputTokens: 2e9, outputTokens: 0 })],
    ["usage of an unknown model", (p, h) => p.incrementUsage({ keyHash: h, model: "nope", inputTokens: 1, outputTokens: 0 })],
    ["adding a bad batch", (p) => p.addKeys([oai("sk-new"), oai("sk-x", { modelFamilies: ["nope"] })])],
    ["disable with a bad state", (p, h) => p.disableKey(h, "gone" as never)],
    ["remove of an unknown key", (p) => p.removeKey("oai-nope")],
  ])("%s", (_name, call) => {
    const { pool, clock, events } = makePool({ allowedFamilies: new Set(["gpt4", "o3"]) });
    const [h] = pool.addKeys([oai("sk-1"), oai("sk-2", { trial: true })]).keyHashes;
    pool.lease({ model: "gpt-4" });
    pool.lease({ model: "gpt-4" });
    pool.reportRateLimit({ keyHash: h, statusCode: 429, headers: {} });
    clock.advance(100);
    const before = pool.listKeys();
    const lockout = pool.lockout({ model: "gpt-4" });
    events.length = 0;
    expect(() => call(pool, h)).toThrow();
    expect(pool.listKeys()).toEqual(before);
    expect(pool.lockout({ model: "gpt-4" })).toEqual(lockout);
    expect(events).toEqual([]);
  });
});

describe("Listing and restoring", () => {
  it("lists keys sorted by hash, filtered by provider and any of the families", () => {
    const { pool } = makePool();
    pool.addKeys([oai("sk-1"), oai("sk-2", { modelFamilies: ["gpt4o"] }), { provider: "anthropic", key: "a-1" }]);
    const all = pool.listKeys();
    expect(all.map((k) => k.keyHash)).toEqual([...all.map((k) => k.keyHash)].sort());
    expect(pool.listKeys({ provider: "anthropic" })).toHaveLength(1);
    expect(pool.listKeys({ modelFamilies: ["gpt4o", "claude"] })).toHaveLength(2);
    expect(pool.listKeys({ provider: "openai", modelFamilies: ["turbo"] })).toHaveLength(1);
  });

  it("restores keys with their whole state (in_flight starts at 0), emitting restored", () => {
    const { pool: first, clock } = makePool();
    const [h] = first.addKeys([oai("sk-1")]).keyHashes;
    first.lease({ model: "gpt-4" });
    first.reportRateLimit({ keyHash: h, statusCode: 429, headers: { "retry-after": "30" } });
    first.incrementUsage({ keyHash: h, model: "gpt-4", inputTokens: 3, outputTokens: 4 });
    first.disableKey(h, "over_quota", "billing");
    const record = { ...first.getKey(h)!, key: first.secretOf(h)! };

    const { pool: second, events } = makePool();
    second.restore([record]);
    expect(second.getKey(h)).toEqual({ ...first.getKey(h), inFlight: 0 });
    expect(events.map((e) => e.type === "updated" && e.cause)).toEqual(["restored"]);
    poolError(() => second.lease({ model: "gpt-4" }), ErrorCode.FailedPrecondition);
    second.enableKey(h);
    expect(second.lockout({ model: "gpt-4" }).lockoutMs).toBe(30_000 - (clock.now() - T0));
  });
});
