/**
 * The checker's schedule with the injected clock: never-checked keys first, the concurrency
 * bound, the period, the interval and its jitter, retries; and what reaches the pool: findings,
 * clones, and findings dropped because an operator decided meanwhile.
 */
import { KeyChecker, type KeyCheckerOptions } from "../../../src/checker/key-checker";
import { CHECKED_PROVIDERS } from "../../../src/checker/upstream-check";
import type { CheckOutcome } from "../../../src/checker/upstream-answer";
import type { CheckSubject, KeyFinding } from "../../../src/domain/key-check";
import { hashKey } from "../../../src/domain/key-hash";
import { ManualClock } from "../../../src/domain/clock";
import { KeyPool } from "../../../src/domain/key-pool";
import { silentLogger } from "../../../src/log";

const T0 = Date.UTC(2026, 0, 1);
const HOUR = 3_600_000;

interface Pending {
  subject: CheckSubject;
  signal: AbortSignal;
  resolve(outcome: CheckOutcome): void;
}

const settle = () => new Promise((resolve) => setImmediate(resolve));
const checked = (finding: KeyFinding = { state: "active" }): CheckOutcome => ({ kind: "checked", finding, warnings: [] });

function setup(options: Partial<KeyCheckerOptions> = {}, keys = 0) {
  const clock = new ManualClock(T0);
  const pool = new KeyPool({ clock });
  const calls: Pending[] = [];
  const checker = new KeyChecker({
    pool,
    clock,
    logger: silentLogger,
    checks: CHECKED_PROVIDERS,
    concurrency: 2,
    periodMs: HOUR,
    intervalMs: 3000,
    random: () => 0,
    check: (subject, signal) => new Promise((resolve) => calls.push({ subject, signal, resolve })),
    ...options,
  });
  // Started before the keys arrive: they queue in the order they are added.
  checker.start();
  const hashes = pool.addKeys(Array.from({ length: keys }, (_, i) => ({ provider: "openai" as const, key: `sk-k${i}` }))).keyHashes;
  /** Answers the oldest open check, then lets the checker react. */
  const answer = async (outcome: CheckOutcome = checked()) => {
    const call = calls.shift();
    if (!call) throw new Error("no check in flight");
    call.resolve(outcome);
    await settle();
    clock.advance(0);
    return call.subject;
  };
  const inFlight = () => calls.map((c) => c.subject.keyHash);
  return { clock, pool, checker, calls, answer, inFlight, hashes };
}

describe("key checker schedule", () => {
  it("checks never-checked keys first, in order, never more than the concurrency at once", async () => {
    const t = setup({ concurrency: 3 }, 7);
    t.checker.start();
    t.clock.advance(0);
    expect(t.inFlight()).toEqual(t.hashes.slice(0, 3));
    await t.answer();
    expect(t.inFlight()).toEqual(t.hashes.slice(1, 4));
    while (t.calls.length > 0) {
      expect(t.calls.length).toBeLessThanOrEqual(3);
      await t.answer();
    }
    expect(t.checker.stats).toMatchObject({ checked: 7, maxInFlight: 3 });
    expect(t.pool.listKeys().every((k) => k.lastChecked === T0)).toBe(true);
  });

  it("checks keys of every provider", () => {
    expect([...CHECKED_PROVIDERS].sort()).toEqual(["anthropic", "azure", "bedrock", "google", "mistral", "openai", "vertex"]);
  });

  it("keys of a provider it has no check for are never checked: their secret goes to no upstream", async () => {
    const t = setup({ concurrency: 4, checks: new Set(["openai"]) });
    const [mistral] = t.pool.addKeys([{ provider: "mistral", key: "mistral-key-0123456789abcdef0123" }]).keyHashes;
    const [openai] = t.pool.addKeys([{ provider: "openai", key: "sk-checked" }]).keyHashes;
    t.clock.advance(0);
    expect(t.inFlight()).toEqual([openai]);
    await t.answer();
    t.pool.markForCheck([mistral]);
    t.clock.advance(HOUR);
    expect(t.calls.map((c) => c.subject.keyHash)).not.toContain(mistral);
    expect(t.pool.getKey(mistral)!.lastChecked).toBe(0);
  });

  it("a key added while checking (AddKeys) is checked before any recurring check", async () => {
    const t = setup({ concurrency: 1 }, 1);
    t.checker.start();
    t.clock.advance(0);
    await t.answer();
    t.clock.advance(HOUR - 1);
    const [fresh] = t.pool.addKeys([{ provider: "openai", key: "sk-new" }]).keyHashes;
    t.clock.advance(0);
    expect(t.inFlight()).toEqual([fresh]);
    t.clock.advance(1); // the first key is due again, but the new one holds the only place
    expect(t.inFlight()).toEqual([fresh]);
    await t.answer();
    expect(t.inFlight()).toEqual([t.hashes[0]]);
  });

  it("checks the least recently checked ACTIVE key again once its period has passed, an interval apart", async () => {
    const t = setup({ concurrency: 4, intervalMs: 3000 }, 2);
    t.checker.start();
    t.clock.advance(0);
    await t.answer(); // key 0 checked at T0
    t.clock.advance(1000);
    await t.answer(); // key 1 checked at T0 + 1 s
    t.clock.advance(HOUR - 1001);
    expect(t.inFlight()).toEqual([]);
    t.clock.advance(1);
    expect(t.inFlight()).toEqual([t.hashes[0]]);
    // Key 1 is due at T0 + 1 h + 1 s, but the interval holds it until T0 + 1 h + 3 s.
    t.clock.advance(2999);
    expect(t.inFlight()).toEqual([t.hashes[0]]);
    t.clock.advance(1);
    expect(t.inFlight()).toEqual([t.hashes[0], t.hashes[1]]);
    expect(t.calls.every((c) => !c.subject.firstCheck)).toBe(true);
  });

  it("the gap between recurring checks is the interval plus at most half of it, at random", async () => {
    for (const [random, gap] of [
      [0, 3000],
      [0.5, 3750],
      [0.9999, 4499],
    ] as const) {
      const t = setup({ concurrency: 4, intervalMs: 3000, random: () => random }, 2);
      t.checker.start();
      t.clock.advance(0);
      await t.answer();
      await t.answer();
      t.clock.advance(HOUR);
      expect(t.inFlight()).toHaveLength(1);
      t.clock.advance(gap - 1);
      expect(t.inFlight()).toHaveLength(1);
      t.clock.advance(1);
      expect(t.inFlight()).toHaveLength(2);
    }
  });

  it("period 0: first checks only", async () => {
    const t = setup({ periodMs: 0 }, 1);
    t.checker.start();
    t.clock.advance(0);
    await t.answer();
    t.clock.advance(100 * HOUR);
    expect(t.inFlight()).toEqual([]);
  });

  it("a key whose check proved nothing is left unchecked and tried again after the outcome's wait", async () => {
    const t = setup({}, 1);
    t.checker.start();
    t.clock.advance(0);
    await t.answer({ kind: "retry", afterMs: 60_000, why: "network error" });
    expect(t.pool.getKey(t.hashes[0])!.lastChecked).toBe(0);
    t.clock.advance(59_999);
    expect(t.inFlight()).toEqual([]);
    t.clock.advance(1);
    expect(t.inFlight()).toEqual([t.hashes[0]]);
    await t.answer({ kind: "retry", afterMs: 10_000, why: "rate limited" });
    t.clock.advance(9_999);
    expect(t.inFlight()).toEqual([]);
    t.clock.advance(1);
    expect(t.inFlight()).toEqual([t.hashes[0]]);
    expect(t.checker.stats.retried).toBe(2);
  });

  it("a key that is not ACTIVE is not checked on schedule", async () => {
    const t = setup({}, 2);
    t.checker.start();
    t.clock.advance(0);
    await t.answer(checked({ state: "revoked", reason: "401" }));
    await t.answer(checked({ state: "over_quota", reason: "429" }));
    t.clock.advance(10 * HOUR);
    expect(t.inFlight()).toEqual([]);
  });

  it("restart: keys checked within their period are not checked again; never-checked ones are", async () => {
    const clock = new ManualClock(T0 + HOUR);
    const pool = new KeyPool({ clock });
    const [recent, old, never] = pool.addKeys([
      { provider: "openai", key: "sk-recent" },
      { provider: "openai", key: "sk-old" },
      { provider: "openai", key: "sk-never" },
    ]).keyHashes;
    const records = pool.listKeys().map((k) => ({
      ...k,
      key: pool.secretOf(k.keyHash)!,
      lastChecked: k.keyHash === recent ? T0 + HOUR - 60_000 : k.keyHash === old ? T0 - 1 : 0,
    }));
    const restarted = new KeyPool({ clock });
    restarted.restore(records);
    const started: string[] = [];
    const checker = new KeyChecker({
      pool: restarted,
      clock,
      logger: silentLogger,
      checks: CHECKED_PROVIDERS,
      concurrency: 8,
      periodMs: HOUR,
      intervalMs: 3000,
      random: () => 0,
      check: (subject) => {
        started.push(subject.keyHash);
        return new Promise(() => undefined);
      },
    });
    checker.start();
    clock.advance(0);
    // The never-checked key first; the key whose period has passed next; the recent one not at all.
    expect(started).toEqual([never, old]);
    clock.advance(HOUR - 60_001);
    expect(started).toEqual([never, old]);
    clock.advance(1);
    expect(started).toEqual([never, old, recent]);
    checker.close();
  });

  it("close() aborts the checks in flight and their findings are not applied", async () => {
    const t = setup({}, 2);
    t.checker.start();
    t.clock.advance(0);
    const signals = t.calls.map((c) => c.signal);
    t.checker.close();
    expect(signals.every((s) => s.aborted)).toBe(true);
    await t.answer();
    expect(t.pool.getKey(t.hashes[0])!.lastChecked).toBe(0);
    expect(t.clock.pendingTimers()).toBe(0);
  });
});

describe("findings reach the pool", () => {
  it("families, trial flag, organization and last_checked, as one change", async () => {
    const t = setup({}, 1);
    const causes: string[] = [];
    t.pool.changes.subscribe((e) => e.type === "updated" && causes.push(e.cause));
    t.checker.start();
    t.clock.advance(0);
    await t.answer(checked({ state: "active", modelFamilies: ["turbo", "gpt4o", "o3"], trial: true, organizationId: "org-a" }));
    expect(t.pool.getKey(t.hashes[0])).toMatchObject({
      modelFamilies: ["turbo", "gpt4o", "o3"],
      trial: true,
      organizationId: "org-a",
      lastChecked: T0,
      state: "active",
    });
    expect(causes).toEqual(["checked"]);
    expect(t.pool.lease({ model: "o3" }).keyHash).toBe(t.hashes[0]);
  });

  it("an operator's families are kept (the operator's word wins)", async () => {
    const t = setup();
    const [pinned] = t.pool.addKeys([{ provider: "openai", key: "sk-pinned", modelFamilies: ["gpt4"] }]).keyHashes;
    t.checker.start();
    t.clock.advance(0);
    await t.answer(checked({ state: "active", modelFamilies: ["turbo", "gpt4o"] }));
    expect(t.pool.getKey(pinned)!.modelFamilies).toEqual(["gpt4"]);
  });

  it("other organizations become clones hashed on key + organization, checked in turn with their organization, never cloned twice", async () => {
    const t = setup({ concurrency: 1 });
    const [parent] = t.pool.addKeys([{ provider: "openai", key: "sk-multi" }]).keyHashes;
    // A paged listing before the finding: the clones must still show in the next one.
    expect([...t.pool.keysAfter("")].map((k) => k.keyHash)).toEqual([parent]);
    t.checker.start();
    t.clock.advance(0);
    await t.answer(checked({ state: "active", modelFamilies: ["gpt4o"], organizationId: "org-a", cloneOrganizations: ["org-b", "org-c"] }));
    const cloneB = hashKey("openai", "sk-multi", "org-b");
    const cloneC = hashKey("openai", "sk-multi", "org-c");
    expect([...t.pool.keysAfter("")].map((k) => k.keyHash)).toEqual([parent, cloneB, cloneC].sort());
    expect(t.pool.listKeys().map((k) => [k.keyHash, k.organizationId, k.lastChecked]).sort()).toEqual(
      [
        [parent, "org-a", T0],
        [cloneB, "org-b", 0],
        [cloneC, "org-c", 0],
      ].sort(),
    );
    expect(t.inFlight()).toEqual([cloneB]);
    expect(t.calls[0].subject).toMatchObject({ organizationId: "org-b", firstCheck: true, secret: "sk-multi" });
    await t.answer(checked({ state: "active", modelFamilies: ["gpt4o"] }));
    await t.answer(checked({ state: "active", modelFamilies: ["turbo"] }));
    expect(t.pool.getKey(cloneC)!.modelFamilies).toEqual(["turbo"]);
    // A recheck of the parent (now bound) makes no clones, even if asked to.
    t.pool.markForCheck([parent]);
    t.clock.advance(0);
    expect(t.calls[0].subject).toMatchObject({ keyHash: parent, organizationId: "org-a" });
    await t.answer(checked({ state: "active", organizationId: "org-z", cloneOrganizations: ["org-b", "org-d"] }));
    expect(t.pool.size).toBe(3);
    expect(t.pool.getKey(parent)!.organizationId).toBe("org-a");
  });

  it("a clone removed by an operator is not made again by a clone of the same organization list", async () => {
    const t = setup({ concurrency: 1 });
    const [parent] = t.pool.addKeys([{ provider: "openai", key: "sk-multi" }]).keyHashes;
    const subject = t.pool.checkSubject(parent)!;
    expect(t.pool.applyFinding(subject, { organizationId: "org-a", cloneOrganizations: ["org-b"] })).toEqual({
      applied: true,
      clones: [hashKey("openai", "sk-multi", "org-b")],
    });
    t.pool.removeKey(hashKey("openai", "sk-multi", "org-b"));
    expect(t.pool.applyFinding(t.pool.checkSubject(parent)!, { organizationId: "org-a", cloneOrganizations: ["org-b"] })).toEqual({
      applied: true,
      clones: [],
    });
  });

  it("a finding arriving after an operator disabled, enabled or removed the key is dropped", async () => {
    const t = setup({ concurrency: 3 }, 3);
    t.checker.start();
    t.clock.advance(0);
    const [a, b, c] = t.hashes;
    t.pool.disableKey(a, "disabled", "operator says no");
    t.pool.disableKey(b, "over_quota");
    t.pool.enableKey(b);
    t.pool.removeKey(c);
    await t.answer(checked({ state: "revoked", reason: "401" }));
    await t.answer(checked({ state: "active", modelFamilies: ["gpt4o"] }));
    await t.answer(checked({ state: "active" }));
    expect(t.pool.getKey(a)).toMatchObject({ state: "disabled", stateReason: "operator says no", lastChecked: 0 });
    expect(t.pool.getKey(b)).toMatchObject({ state: "active", modelFamilies: ["turbo", "gpt4"], lastChecked: 0 });
    expect(t.pool.getKey(c)).toBeUndefined();
    expect(t.checker.stats.dropped).toBe(3);
    // b is still never checked, so it is checked again; the DISABLED key a is not.
    expect(t.inFlight()).toEqual([b]);
  });

  it("RecheckKeys: only a check that proves the key works brings a REVOKED or OVER_QUOTA key back; DISABLED stays", async () => {
    const t = setup({ concurrency: 1 }, 3);
    const [revoked, overQuota, disabled] = t.hashes;
    t.checker.start();
    t.clock.advance(0);
    await t.answer(checked({ state: "revoked", reason: "401" }));
    await t.answer(checked({ state: "over_quota", reason: "429 insufficient_quota" }));
    await t.answer(checked({ state: "active" }));
    t.pool.disableKey(disabled);
    expect(t.pool.markForCheck()).toBe(2);
    t.clock.advance(0);
    expect(t.inFlight()).toEqual([revoked]);
    await t.answer(checked({ state: "revoked", reason: "401" }));
    await t.answer(checked({ state: "active" }));
    expect(t.inFlight()).toEqual([]);
    expect(t.pool.getKey(revoked)!.state).toBe("revoked");
    expect(t.pool.getKey(overQuota)).toMatchObject({ state: "active", stateReason: "" });
    expect(t.pool.getKey(disabled)!.state).toBe("disabled");
  });

  it("a check that shows the key alive but proves nothing more leaves an OVER_QUOTA key as it is", async () => {
    const t = setup({ concurrency: 1 }, 1);
    t.pool.disableKey(t.hashes[0], "over_quota");
    t.checker.start();
    t.clock.advance(0);
    await t.answer(checked({}));
    expect(t.pool.getKey(t.hashes[0])).toMatchObject({ state: "over_quota", lastChecked: T0 });
  });

  it("a finding the pool refuses (an organization id past its limit) changes nothing and is tried again after a minute", async () => {
    const t = setup({ concurrency: 1 }, 1);
    t.checker.start();
    t.clock.advance(0);
    await t.answer(checked({ state: "active", organizationId: "o".repeat(300) }));
    expect(t.pool.getKey(t.hashes[0])).toMatchObject({ organizationId: "", lastChecked: 0 });
    expect(t.inFlight()).toEqual([]);
    t.clock.advance(60_000);
    expect(t.inFlight()).toEqual([t.hashes[0]]);
  });

  it("RecheckKeys of a key in flight checks it again after the check in flight", async () => {
    const t = setup({ concurrency: 1 }, 1);
    t.checker.start();
    t.clock.advance(0);
    await t.answer();
    t.clock.advance(HOUR);
    expect(t.inFlight()).toEqual([t.hashes[0]]);
    t.pool.markForCheck([t.hashes[0]]);
    await t.answer();
    expect(t.inFlight()).toEqual([t.hashes[0]]);
    expect(t.calls[0].subject.firstCheck).toBe(true);
  });
});
