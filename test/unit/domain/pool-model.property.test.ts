/**
 * The fast pool against a deliberately naive model: long random sequences of operations (add,
 * lease, report 200/429/401/other with random headers, usage, disable, enable, remove, lockout,
 * clock moves); at every step both must choose the same key, give the same lockout and errors,
 * and hold the same state for every key. The model filters and sorts the whole pool per call,
 * exactly as docs/ words the rules. It shares only the hash function and the header
 * arithmetic (planReport, tested on its own in parsing.test.ts) with the pool.
 */
import fc from "fast-check";
import { ManualClock } from "../../../src/domain/clock";
import { ErrorCode, PoolError } from "../../../src/domain/errors";
import { hashKey } from "../../../src/domain/key-hash";
import { KeyPool } from "../../../src/domain/key-pool";
import { openai } from "../../../src/domain/providers/openai";
import { planReport } from "../../../src/domain/rate-limit-report";
import type { DisableState, KeyState, KeyStatus, TokenUsage } from "../../../src/domain/types";

const REUSE = 1000;
const TTL = 20_000;
const LIMITS = { maxResetMs: 10_000, defaultCooldownMs: 10_000, maxCooldownMs: 60_000 };
const SECRETS = Array.from({ length: 10 }, (_, i) => `sk-model-${i}`);
const FAMILIES = ["turbo", "gpt4", "gpt4-32k", "gpt4o"];
// The model's own little family table for the models the test uses.
const MODELS: Record<string, { family: string; embedding: boolean }> = {
  "gpt-4": { family: "gpt4", embedding: false },
  "gpt-4-0613": { family: "gpt4", embedding: false },
  "gpt-3.5-turbo": { family: "turbo", embedding: false },
  "text-embedding-ada-002": { family: "turbo", embedding: true },
  "gpt-4-32k": { family: "gpt4-32k", embedding: false },
  "gpt-4o": { family: "gpt4o", embedding: false },
};
const MODEL_NAMES = Object.keys(MODELS);

interface ModelKey {
  hash: string;
  families: string[];
  trial: boolean;
  state: KeyState;
  holdUntil: number;
  cooldownUntil: number;
  rateLimitedAt: number;
  lastUsed: number;
  promptCount: number;
  usage: Record<string, TokenUsage>;
  inFlight: number;
  leaseCount: number;
}

class NaivePool {
  keys = new Map<string, ModelKey>();
  leases = new Map<string, { hash: string; expiresAt: number }>();

  readyAt(k: ModelKey) {
    return Math.max(k.holdUntil, k.cooldownUntil);
  }

  eligible(model: string) {
    const { family, embedding } = MODELS[model];
    return [...this.keys.values()].filter((k) => k.state === "active" && k.families.includes(family) && !(embedding && k.trial));
  }

  /** The key to lease, or the error code (and retry) the pool must answer. */
  choose(model: string, now: number): { key?: ModelKey; code?: ErrorCode; retry?: number } {
    const eligible = this.eligible(model);
    if (eligible.length === 0) return { code: ErrorCode.FailedPrecondition };
    const ready = eligible.filter((k) => now >= this.readyAt(k));
    if (ready.length === 0) return { code: ErrorCode.ResourceExhausted, retry: Math.min(...eligible.map((k) => this.readyAt(k))) - now };
    ready.sort(
      (a, b) =>
        Number(b.trial) - Number(a.trial) ||
        Number(a.families.includes("gpt4-32k")) - Number(b.families.includes("gpt4-32k")) ||
        a.lastUsed - b.lastUsed ||
        (a.hash < b.hash ? -1 : a.hash > b.hash ? 1 : 0),
    );
    return { key: ready[0] };
  }

  lockout(model: string, now: number) {
    const eligible = this.eligible(model);
    if (eligible.length === 0) return { lockoutMs: 0, noActiveKeys: true };
    if (eligible.some((k) => now >= this.readyAt(k))) return { lockoutMs: 0, noActiveKeys: false };
    return { lockoutMs: Math.min(...eligible.map((k) => this.readyAt(k))) - now, noActiveKeys: false };
  }

  expire(now: number) {
    for (const [id, lease] of this.leases) {
      if (lease.expiresAt <= now) {
        this.leases.delete(id);
        const k = this.keys.get(lease.hash);
        if (k) k.inFlight--;
      }
    }
  }

  statuses(): Omit<KeyStatus, "stateReason">[] {
    return [...this.keys.values()]
      .sort((a, b) => (a.hash < b.hash ? -1 : 1))
      .map((k) => ({
        keyHash: k.hash,
        provider: "openai",
        modelFamilies: k.families,
        organizationId: "",
        trial: k.trial,
        state: k.state,
        readyAt: this.readyAt(k),
        holdUntil: k.holdUntil,
        cooldownUntil: k.cooldownUntil,
        rateLimitedAt: k.rateLimitedAt,
        lastUsed: k.lastUsed,
        lastChecked: 0,
        promptCount: k.promptCount,
        usage: k.usage,
        inFlight: k.inFlight,
        leaseCount: k.leaseCount,
        // Every key here is added with its families named: the key checker would keep them.
        familiesPinned: true,
      }));
  }
}

type Op =
  | { op: "add"; secret: number; families: string[]; trial: boolean }
  | { op: "lease"; model: string }
  | { op: "report"; key: number; status: number; headers: Record<string, string> }
  | { op: "usage"; key: number; model: string; input: number; output: number; lease: number }
  | { op: "disable"; key: number; state: DisableState }
  | { op: "enable"; key: number }
  | { op: "remove"; key: number }
  | { op: "lockout"; model: string }
  | { op: "advance"; ms: number };

const duration = fc.oneof(
  fc.constantFrom("20ms", "1s", "6m0s", "1h2m3.5s", "0.5s", "2s", "soon", "", "0"),
  fc.integer({ min: 0, max: 15_000 }).map((ms) => `${ms}ms`),
);
const headers = fc.dictionary(
  fc.constantFrom(
    "x-ratelimit-remaining-requests",
    "X-RateLimit-Remaining-Tokens",
    "x-ratelimit-reset-requests",
    "x-ratelimit-reset-tokens",
    "retry-after",
    "retry-after-ms",
    "content-type",
  ),
  fc.oneof(fc.constantFrom("0", "1", "25", "garbage", "3"), duration),
  { maxKeys: 5 },
);

const op: fc.Arbitrary<Op> = fc.oneof(
  { weight: 2, arbitrary: fc.record({ op: fc.constant("add" as const), secret: fc.nat(SECRETS.length - 1), families: fc.subarray(FAMILIES, { minLength: 1 }), trial: fc.boolean() }) },
  { weight: 8, arbitrary: fc.record({ op: fc.constant("lease" as const), model: fc.constantFrom(...MODEL_NAMES) }) },
  { weight: 4, arbitrary: fc.record({ op: fc.constant("report" as const), key: fc.nat(12), status: fc.constantFrom(200, 200, 201, 429, 429, 401, 500), headers }) },
  { weight: 2, arbitrary: fc.record({ op: fc.constant("usage" as const), key: fc.nat(12), model: fc.constantFrom(...MODEL_NAMES, "not-a-model"), input: fc.nat(5000), output: fc.nat(5000), lease: fc.integer({ min: -1, max: 30 }) }) },
  { weight: 1, arbitrary: fc.record({ op: fc.constant("disable" as const), key: fc.nat(12), state: fc.constantFrom("disabled" as const, "revoked" as const, "over_quota" as const) }) },
  { weight: 1, arbitrary: fc.record({ op: fc.constant("enable" as const), key: fc.nat(12) }) },
  { weight: 1, arbitrary: fc.record({ op: fc.constant("remove" as const), key: fc.nat(12) }) },
  { weight: 3, arbitrary: fc.record({ op: fc.constant("lockout" as const), model: fc.constantFrom(...MODEL_NAMES) }) },
  { weight: 4, arbitrary: fc.record({ op: fc.constant("advance" as const), ms: fc.oneof(fc.integer({ min: 0, max: 1500 }), fc.integer({ min: 0, max: 25_000 })) }) },
);

function codeOf(fn: () => unknown): { code?: ErrorCode; retry?: number; value?: unknown } {
  try {
    return { value: fn() };
  } catch (error) {
    if (!(error instanceof PoolError)) throw error;
    return { code: error.code, retry: error.retryAfterMs };
  }
}

function run(ops: Op[]) {
  const clock = new ManualClock();
  const pool = new KeyPool({ clock, reuseDelayMs: REUSE, leaseTtlMs: TTL, ...LIMITS });
  const model = new NaivePool();
  const hashes: string[] = []; // every hash ever added, so ops can name removed keys too
  const leaseIds: string[] = [];
  const step = (o: Op, i: number) => {
    const now = clock.now();
    const where = `step ${i} ${JSON.stringify(o)}`;
    switch (o.op) {
      case "add": {
        const hash = hashKey("openai", SECRETS[o.secret], "");
        const r = pool.addKeys([{ provider: "openai", key: SECRETS[o.secret], modelFamilies: o.families, trial: o.trial }]);
        expect(r.keyHashes).toEqual([hash]);
        if (model.keys.has(hash)) {
          expect(r.duplicates).toBe(1);
        } else {
          expect(r.added).toBe(1);
          model.keys.set(hash, {
            hash, families: [...o.families], trial: o.trial, state: "active", holdUntil: 0, cooldownUntil: 0, rateLimitedAt: 0,
            lastUsed: 0, promptCount: 0, usage: {}, inFlight: 0, leaseCount: 0,
          });
          if (!hashes.includes(hash)) hashes.push(hash);
        }
        break;
      }
      case "lease": {
        const expected = model.choose(o.model, now);
        const got = codeOf(() => pool.lease({ model: o.model }));
        if (expected.key) {
          const lease = got.value as { keyHash: string; leaseId: string };
          expect({ where, hash: lease?.keyHash }).toEqual({ where, hash: expected.key.hash });
          const k = expected.key;
          k.lastUsed = now;
          k.leaseCount++;
          k.inFlight++;
          k.holdUntil = now + REUSE;
          model.leases.set(lease.leaseId, { hash: k.hash, expiresAt: now + TTL });
          leaseIds.push(lease.leaseId);
        } else {
          expect({ where, code: got.code, retry: got.retry }).toEqual({ where, code: expected.code, retry: expected.retry });
        }
        break;
      }
      case "lockout":
        expect({ where, l: pool.lockout({ model: o.model }) }).toEqual({ where, l: model.lockout(o.model, now) });
        break;
      case "report": {
        const hash = hashes[o.key];
        const k = hash === undefined ? undefined : model.keys.get(hash);
        const got = codeOf(() => pool.reportRateLimit({ keyHash: hash ?? "oai-none", statusCode: o.status, headers: o.headers }));
        if (!k) {
          expect(got.code).toBe(ErrorCode.NotFound);
          break;
        }
        const effect = planReport(o.status, o.headers, openai.rateLimitHeaders, now, LIMITS);
        if (effect.kind === "revoke") k.state = "revoked";
        if (effect.kind === "hold") k.holdUntil = now + effect.waitMs;
        if (effect.kind === "cooldown") {
          k.rateLimitedAt = now;
          k.cooldownUntil = Math.max(k.cooldownUntil, now + effect.waitMs);
        }
        expect(got.value).toEqual({ readyAt: model.readyAt(k) });
        break;
      }
      case "usage": {
        const hash = hashes[o.key];
        const k = hash === undefined ? undefined : model.keys.get(hash);
        const leaseId = o.lease < 0 ? undefined : leaseIds[leaseIds.length - 1 - o.lease] ?? "gone";
        const got = codeOf(() =>
          pool.incrementUsage({ keyHash: hash ?? "oai-none", model: o.model, inputTokens: o.input, outputTokens: o.output, leaseId }),
        );
        // The model resolves in the key's provider, so an unknown key is found out first.
        if (!k) expect(got.code).toBe(ErrorCode.NotFound);
        else if (!(o.model in MODELS)) expect(got.code).toBe(ErrorCode.InvalidArgument);
        else {
          expect(got.code).toBeUndefined();
          const family = MODELS[o.model].family;
          k.promptCount++;
          const u = (k.usage[family] ??= { inputTokens: 0, outputTokens: 0, prompts: 0 });
          u.inputTokens += o.input;
          u.outputTokens += o.output;
          u.prompts++;
          const lease = leaseId === undefined ? undefined : model.leases.get(leaseId);
          if (lease && lease.hash === hash) {
            model.leases.delete(leaseId!);
            k.inFlight--;
          }
        }
        break;
      }
      case "disable":
      case "enable":
      case "remove": {
        const hash = hashes[o.key];
        const k = hash === undefined ? undefined : model.keys.get(hash);
        const got = codeOf(() =>
          o.op === "disable" ? pool.disableKey(hash ?? "oai-none", o.state) : o.op === "enable" ? pool.enableKey(hash ?? "oai-none") : pool.removeKey(hash ?? "oai-none"),
        );
        if (!k) {
          expect(got.code).toBe(ErrorCode.NotFound);
          break;
        }
        if (o.op === "disable") k.state = o.state;
        if (o.op === "enable") k.state = "active";
        if (o.op === "remove") {
          model.keys.delete(k.hash);
          for (const [id, lease] of model.leases) if (lease.hash === k.hash) model.leases.delete(id);
        }
        break;
      }
      case "advance":
        clock.advance(o.ms);
        model.expire(clock.now());
        break;
    }
    const actual = pool.listKeys();
    for (const s of actual) expect(s.stateReason === "").toBe(s.state === "active");
    expect({ where, keys: actual.map(({ stateReason: _r, ...rest }) => rest) }).toEqual({ where, keys: model.statuses() });
  };
  ops.forEach(step);
  pool.close();
  expect(clock.pendingTimers()).toBe(0);
}

describe("the fast pool agrees with a naive filter-and-sort model", () => {
  it("on long random operation sequences: same choices, lockouts, errors and key states at every step", () => {
    fc.assert(
      fc.property(fc.array(op, { minLength: 50, maxLength: 300 }), (ops) => run(ops)),
      { numRuns: 100 },
    );
  });

  it("on sequences that keep many keys busy (short clock moves, many leases)", () => {
    const busy = fc.oneof(
      { weight: 1, arbitrary: fc.record({ op: fc.constant("add" as const), secret: fc.nat(SECRETS.length - 1), families: fc.subarray(FAMILIES, { minLength: 1 }), trial: fc.boolean() }) },
      { weight: 6, arbitrary: fc.record({ op: fc.constant("lease" as const), model: fc.constantFrom("gpt-4", "gpt-3.5-turbo", "text-embedding-ada-002") }) },
      { weight: 3, arbitrary: fc.record({ op: fc.constant("advance" as const), ms: fc.integer({ min: 0, max: 400 }) }) },
      { weight: 2, arbitrary: fc.record({ op: fc.constant("report" as const), key: fc.nat(9), status: fc.constantFrom(200, 429), headers }) },
      { weight: 2, arbitrary: fc.record({ op: fc.constant("lockout" as const), model: fc.constantFrom("gpt-4", "text-embedding-ada-002") }) },
    );
    fc.assert(
      fc.property(fc.array(busy, { minLength: 100, maxLength: 400 }), (ops) => run(ops as Op[])),
      { numRuns: 30 },
    );
  });
});
