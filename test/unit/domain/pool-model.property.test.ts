/**
 * Both pools — the in-memory KeyPool and the pool kept in Redis (src/redis, against a private
 * redis-server) — against a deliberately naive model, with the same random sequences (one seed
 * for both): long random sequences of operations (add,
 * lease, report 200/429/401/other with random headers, usage, disable, enable, remove, lockout,
 * clock moves); at every step both must choose the same key, give the same lockout and errors,
 * and hold the same state for every key. The model filters and sorts the whole pool per call,
 * exactly as docs/ words the rules. It shares only the hash function, the header arithmetic
 * (planReport, tested on its own in parsing.test.ts) and each provider's header scheme with the
 * pool. Keys and models come from all seven providers, so a lease, report or lockout of one
 * provider must never touch another's keys.
 */
import fc from "fast-check";
import Redis from "ioredis";
import { ManualClock } from "../../../src/domain/clock";
import { ErrorCode, PoolError } from "../../../src/domain/errors";
import { hashKey } from "../../../src/domain/key-hash";
import { KeyPool } from "../../../src/domain/key-pool";
import { providerInfo } from "../../../src/domain/providers";
import { planReport } from "../../../src/domain/rate-limit-report";
import type { PoolApi } from "../../../src/domain/pool-api";
import type { DisableState, KeyState, KeyStatus, ProviderId, TokenUsage } from "../../../src/domain/types";
import { RedisPool } from "../../../src/redis/redis-pool";
import { startRedisServer, type RedisServer } from "../../support/redis-server";
import { credential } from "./providers/fixtures";

const REUSE = 1000;
const TTL = 20_000;
const LIMITS = { maxResetMs: 10_000, defaultCooldownMs: 10_000, maxCooldownMs: 60_000 };
const SECRETS = 10;
const PROVIDER_IDS: ProviderId[] = ["openai", "anthropic", "google", "mistral", "azure", "bedrock", "vertex"];
/** The families a test key of each provider may be given. */
const FAMILIES_OF: Record<ProviderId, string[]> = {
  openai: ["turbo", "gpt4", "gpt4-32k", "gpt4o"],
  azure: ["turbo", "gpt4", "gpt4-32k", "gpt4o"],
  anthropic: ["claude-sonnet", "claude"],
  google: ["gemini-flash", "gemini-embedding"],
  mistral: ["mistral-large", "mistral-tiny"],
  bedrock: ["claude-sonnet", "llama"],
  vertex: ["claude-sonnet", "mistral-large", "llama"],
};
// The model's own little family table for the models the test uses: each model's family in every
// provider whose table maps it, the model's vendor first (the one a request without a provider
// gets), and whether it is an embedding model.
const MODELS: Record<string, { families: Partial<Record<ProviderId, string>>; embedding: boolean }> = {
  "gpt-4": { families: { openai: "gpt4", azure: "gpt4" }, embedding: false },
  "gpt-4-0613": { families: { openai: "gpt4", azure: "gpt4" }, embedding: false },
  "gpt-3.5-turbo": { families: { openai: "turbo", azure: "turbo" }, embedding: false },
  "text-embedding-ada-002": { families: { openai: "turbo", azure: "turbo", google: "gemini-embedding" }, embedding: true },
  "gpt-4-32k": { families: { openai: "gpt4-32k", azure: "gpt4-32k" }, embedding: false },
  "gpt-4o": { families: { openai: "gpt4o", azure: "gpt4o" }, embedding: false },
  "claude-3-5-sonnet-20241022": { families: { anthropic: "claude-sonnet", vertex: "claude-sonnet" }, embedding: false },
  "gemini-2.0-flash": { families: { google: "gemini-flash" }, embedding: false },
  "gemini-embedding-001": { families: { google: "gemini-embedding" }, embedding: true },
  "mistral-large-latest": { families: { mistral: "mistral-large", vertex: "mistral-large" }, embedding: false },
  "mistral-embed": { families: { mistral: "mistral-tiny" }, embedding: true },
  "anthropic.claude-3-5-sonnet-20240620-v1:0": { families: { bedrock: "claude-sonnet" }, embedding: false },
  "meta.llama3-70b-instruct-v1:0": { families: { bedrock: "llama" }, embedding: false },
  "meta/llama-3.1-405b-instruct-maas": { families: { vertex: "llama" }, embedding: false },
};
const MODEL_NAMES = Object.keys(MODELS);
/** Lease requests: every model with the provider left out, and the hosts' models named with theirs. */
const REQUESTS: { model: string; provider?: ProviderId }[] = [
  ...MODEL_NAMES.map((model) => ({ model })),
  { model: "gpt-4o", provider: "azure" },
  { model: "text-embedding-ada-002", provider: "azure" },
  { model: "gpt-4-32k", provider: "azure" },
  { model: "claude-3-5-sonnet-20241022", provider: "vertex" },
  { model: "mistral-large-latest", provider: "vertex" },
];
type Request = (typeof REQUESTS)[number];

/** The provider and family a request resolves to: the named provider, else the model's vendor. */
function target(req: Request): { provider: ProviderId; family: string; embedding: boolean } {
  const { families, embedding } = MODELS[req.model];
  const provider = req.provider ?? (Object.keys(families)[0] as ProviderId);
  return { provider, family: families[provider]!, embedding };
}

interface ModelKey {
  hash: string;
  provider: ProviderId;
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

  eligible(req: Request) {
    const { provider, family, embedding } = target(req);
    return [...this.keys.values()].filter(
      (k) => k.provider === provider && k.state === "active" && k.families.includes(family) && !(embedding && k.trial),
    );
  }

  /** The key to lease, or the error code (and retry) the pool must answer. */
  choose(model: Request, now: number): { key?: ModelKey; code?: ErrorCode; retry?: number } {
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

  lockout(model: Request, now: number) {
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
        provider: k.provider,
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
  | { op: "add"; provider: ProviderId; secret: number; families: string[]; trial: boolean }
  | { op: "lease"; request: Request }
  | { op: "report"; key: number; status: number; headers: Record<string, string> }
  | { op: "usage"; key: number; model: string; input: number; output: number; lease: number }
  | { op: "disable"; key: number; state: DisableState }
  | { op: "enable"; key: number }
  | { op: "remove"; key: number }
  | { op: "lockout"; request: Request }
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
    "x-ratelimit-remaining-tokens-minute",
    "anthropic-ratelimit-requests-remaining",
    "retry-after",
    "retry-after-ms",
    "content-type",
  ),
  fc.oneof(fc.constantFrom("0", "1", "25", "garbage", "3"), duration),
  { maxKeys: 5 },
);

const add = fc.constantFrom(...PROVIDER_IDS).chain((provider) =>
  fc.record({
    op: fc.constant("add" as const),
    provider: fc.constant(provider),
    secret: fc.nat(SECRETS - 1),
    families: fc.subarray(FAMILIES_OF[provider], { minLength: 1 }),
    trial: fc.boolean(),
  }),
);
const request = fc.constantFrom(...REQUESTS);

const op: fc.Arbitrary<Op> = fc.oneof(
  { weight: 2, arbitrary: add },
  { weight: 8, arbitrary: fc.record({ op: fc.constant("lease" as const), request }) },
  { weight: 4, arbitrary: fc.record({ op: fc.constant("report" as const), key: fc.nat(12), status: fc.constantFrom(200, 200, 201, 429, 429, 401, 500), headers }) },
  { weight: 2, arbitrary: fc.record({ op: fc.constant("usage" as const), key: fc.nat(12), model: fc.constantFrom(...MODEL_NAMES, "not-a-model"), input: fc.nat(5000), output: fc.nat(5000), lease: fc.integer({ min: -1, max: 30 }) }) },
  { weight: 1, arbitrary: fc.record({ op: fc.constant("disable" as const), key: fc.nat(12), state: fc.constantFrom("disabled" as const, "revoked" as const, "over_quota" as const) }) },
  { weight: 1, arbitrary: fc.record({ op: fc.constant("enable" as const), key: fc.nat(12) }) },
  { weight: 1, arbitrary: fc.record({ op: fc.constant("remove" as const), key: fc.nat(12) }) },
  { weight: 3, arbitrary: fc.record({ op: fc.constant("lockout" as const), request }) },
  { weight: 4, arbitrary: fc.record({ op: fc.constant("advance" as const), ms: fc.oneof(fc.integer({ min: 0, max: 1500 }), fc.integer({ min: 0, max: 25_000 })) }) },
);

async function codeOf(fn: () => unknown): Promise<{ code?: ErrorCode; retry?: number; value?: unknown }> {
  try {
    return { value: await fn() };
  } catch (error) {
    if (!(error instanceof PoolError)) throw error;
    return { code: error.code, retry: error.retryAfterMs };
  }
}

/** The calls the sequences make, on either pool. */
type PoolUnderTest = Pick<PoolApi, "addKeys" | "lease" | "lockout" | "reportRateLimit" | "incrementUsage" | "disableKey" | "enableKey" | "removeKey" | "listKeys">;

/** A pool to drive: made fresh for each sequence, on the sequence's clock. */
interface Backend {
  name: string;
  open(clock: ManualClock): Promise<{ pool: PoolUnderTest; close(): Promise<void> }>;
}

const TUNABLES = { reuseDelayMs: REUSE, leaseTtlMs: TTL, ...LIMITS };

const inMemory: Backend = {
  name: "the in-memory KeyPool",
  open: async (clock) => {
    const pool = new KeyPool({ clock, ...TUNABLES });
    return { pool, close: async () => pool.close() };
  },
};

/** The pool kept in Redis, its scripts on the sequence's clock; Redis is emptied before each sequence. */
function inRedis(server: () => RedisServer): Backend & { closeClient(): void } {
  let redis: Redis | undefined;
  return {
    name: "the pool kept in Redis",
    open: async (clock) => {
      redis ??= new Redis(server().url);
      await redis.flushdb();
      const pool = await RedisPool.open({ redis, clock, tunables: TUNABLES, scriptTimeFromClock: true });
      return { pool, close: () => pool.close() };
    },
    closeClient: () => redis?.disconnect(),
  };
}

async function run(backend: Backend, ops: Op[]) {
  const clock = new ManualClock();
  const { pool, close } = await backend.open(clock);
  const model = new NaivePool();
  const hashes: string[] = []; // every hash ever added, so ops can name removed keys too
  const leaseIds: string[] = [];
  const step = async (o: Op, i: number) => {
    const now = clock.now();
    const where = `step ${i} ${JSON.stringify(o)}`;
    switch (o.op) {
      case "add": {
        const key = credential(o.provider, o.secret);
        const hash = hashKey(o.provider, key, "");
        const r = await pool.addKeys([{ provider: o.provider, key, modelFamilies: o.families, trial: o.trial }]);
        expect(r.keyHashes).toEqual([hash]);
        if (model.keys.has(hash)) {
          expect(r.duplicates).toBe(1);
        } else {
          expect(r.added).toBe(1);
          model.keys.set(hash, {
            hash, provider: o.provider, families: [...o.families], trial: o.trial, state: "active", holdUntil: 0, cooldownUntil: 0, rateLimitedAt: 0,
            lastUsed: 0, promptCount: 0, usage: {}, inFlight: 0, leaseCount: 0,
          });
          if (!hashes.includes(hash)) hashes.push(hash);
        }
        break;
      }
      case "lease": {
        const expected = model.choose(o.request, now);
        const got = await codeOf(() => pool.lease({ ...o.request }));
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
        expect({ where, l: await pool.lockout({ ...o.request }) }).toEqual({ where, l: model.lockout(o.request, now) });
        break;
      case "report": {
        const hash = hashes[o.key];
        const k = hash === undefined ? undefined : model.keys.get(hash);
        const got = await codeOf(() => pool.reportRateLimit({ keyHash: hash ?? "oai-none", statusCode: o.status, headers: o.headers }));
        if (!k) {
          expect(got.code).toBe(ErrorCode.NotFound);
          break;
        }
        const effect = planReport(o.status, o.headers, providerInfo(k.provider).rateLimitHeaders, now, LIMITS);
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
        const got = await codeOf(() =>
          pool.incrementUsage({ keyHash: hash ?? "oai-none", model: o.model, inputTokens: o.input, outputTokens: o.output, leaseId }),
        );
        // The model resolves in the key's provider, so an unknown key is found out first.
        if (!k) expect(got.code).toBe(ErrorCode.NotFound);
        else if (!(o.model in MODELS) || MODELS[o.model].families[k.provider] === undefined) expect(got.code).toBe(ErrorCode.InvalidArgument);
        else {
          expect(got.code).toBeUndefined();
          const family = MODELS[o.model].families[k.provider]!;
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
        const got = await codeOf(() =>
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
    const actual = await pool.listKeys();
    for (const s of actual) expect(s.stateReason === "").toBe(s.state === "active");
    expect({ where, keys: actual.map(({ stateReason: _r, ...rest }) => rest) }).toEqual({ where, keys: model.statuses() });
  };
  try {
    for (let i = 0; i < ops.length; i++) await step(ops[i]!, i);
  } finally {
    await close();
  }
  expect(clock.pendingTimers()).toBe(0);
}

// One seed for both pools, so that they answer the same sequences; fast-check prints it on failure.
const SEED = Number(process.env.KEYPOOL_PROPERTY_SEED ?? Date.now() % 2 ** 31);

let server: RedisServer | undefined;
const redisBackend = inRedis(() => server!);

beforeAll(async () => {
  server = await startRedisServer();
}, 30_000);

afterAll(async () => {
  redisBackend.closeClient();
  await server?.close();
});

describe.each([inMemory, redisBackend])("$name agrees with a naive filter-and-sort model", (backend) => {
  it("on long random operation sequences: same choices, lockouts, errors and key states at every step", async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(op, { minLength: 50, maxLength: 300 }), (ops) => run(backend, ops)),
      { numRuns: 100, seed: SEED },
    );
  }, 300_000);

  it("on sequences that keep many keys busy (short clock moves, many leases)", async () => {
    const busy = fc.oneof(
      { weight: 1, arbitrary: add },
      { weight: 6, arbitrary: fc.record({ op: fc.constant("lease" as const), request }) },
      { weight: 3, arbitrary: fc.record({ op: fc.constant("advance" as const), ms: fc.integer({ min: 0, max: 400 }) }) },
      { weight: 2, arbitrary: fc.record({ op: fc.constant("report" as const), key: fc.nat(9), status: fc.constantFrom(200, 429), headers }) },
      { weight: 2, arbitrary: fc.record({ op: fc.constant("lockout" as const), request }) },
    );
    await fc.assert(
      fc.asyncProperty(fc.array(busy, { minLength: 100, maxLength: 400 }), (ops) => run(backend, ops as Op[])),
      { numRuns: 30, seed: SEED },
    );
  }, 300_000);
});
