import { ChangeFeed } from "./change-feed";
import { MAX_TIMER_DELAY_MS, type Clock, type Timer } from "./clock";
import {
  ErrorCode,
  PoolError,
  failedPrecondition,
  invalidArgument,
  notFound,
  permissionDenied,
  resourceExhausted,
} from "./errors";
import type { CheckSubject, FindingResult, KeyFinding } from "./key-check";
import { hashKey, type KeyHasher } from "./key-hash";
import { entryFromRecord, internFamilies, newEntry, toStatus, usageOf, type KeyEntry } from "./key-entry";
import { LeaseBook, type OpenLease } from "./leases";
import { FamilyTable } from "./model-families";
import { isProviderId, providerInfo, PROVIDERS } from "./providers";
import { planReport } from "./rate-limit-report";
import { SelectionIndex } from "./selection-index";
import type { ChangeCause, KeyRecord, KeySpec, KeyStatus, Lease, PoolEvent, ProviderId } from "./types";
import {
  LIMITS,
  checkHeaders,
  checkKeySecret,
  checkModel,
  checkStatusCode,
  checkText,
  checkTokens,
} from "./validation";
import { WaiterQueues, type WaitTarget, type Waiter, type WaiterQueue } from "./waiters";

export interface PoolOptions {
  clock: Clock;
  /** Model → family table; default: the built-in OpenAI and Anthropic tables. */
  families?: FamilyTable;
  /** Families that may be leased at all (ALLOWED_MODEL_FAMILIES); null/absent: every family. */
  allowedFamilies?: ReadonlySet<string> | null;
  /** KEYPOOL_REUSE_DELAY: how long a leased key is held before it is handed out again. */
  reuseDelayMs?: number;
  /** KEYPOOL_LEASE_TTL: a lease not ended by IncrementUsage ends after this long. */
  leaseTtlMs?: number;
  /** KEYPOOL_MAX_RESET: cap on a hold taken from x-ratelimit-reset-* headers. */
  maxResetMs?: number;
  /** KEYPOOL_DEFAULT_COOLDOWN: cooldown after a 429 that states no wait. */
  defaultCooldownMs?: number;
  /** KEYPOOL_MAX_COOLDOWN: cap on any cooldown. */
  maxCooldownMs?: number;
  /** Lease waiters queued per family before RESOURCE_EXHAUSTED. */
  maxWaitersPerFamily?: number;
  /** Computes key hashes; tests inject one to force a collision. Default: hashKey. */
  keyHasher?: KeyHasher;
}

export const POOL_DEFAULTS = {
  reuseDelayMs: 1000,
  leaseTtlMs: 600_000,
  maxResetMs: 10_000,
  defaultCooldownMs: 10_000,
  maxCooldownMs: 60_000,
  maxWaitersPerFamily: 10_000,
} as const;

export interface LeaseRequest {
  model: string;
  provider?: ProviderId;
}

/** A model name resolved: its provider, family, and whether it is an embedding model. */
interface ResolvedTarget {
  provider: ProviderId;
  family: string;
  embedding: boolean;
}

const MODEL_CACHE_LIMIT = 1024;
const KEY_HASH_SHAPE = /^[a-z]{1,16}-[0-9a-f]{1,64}$/;

/** A model request after validation: where its keys live. */
interface Target extends WaitTarget {
  model: string;
}

/** A proxy's report of an upstream answer. */
export interface ReportInput {
  keyHash: string;
  statusCode: number;
  headers: Record<string, string>;
  leaseId?: string;
  /** The upstream error body's `type` (OpenAI: error.type), when the proxy read it. */
  errorType?: string;
  /** The upstream error body's `code` (OpenAI: error.code), when the proxy read it. */
  errorCode?: string;
  /** The model the request asked for: needed for 404 model_not_found. */
  model?: string;
}

const DISABLE_STATES = new Set(["disabled", "revoked", "over_quota"]);
const DEFAULT_REASONS: Record<string, string> = {
  disabled: "disabled by an operator",
  revoked: "revoked by an operator",
  over_quota: "over quota, as an operator reported",
};

/**
 * The key pool: keys, their state, and the choice of a key for each request (POLICY.md).
 * Pure domain: no I/O, time only from the injected clock. Every change to a key publishes
 * exactly one event on `changes`; a call that throws changes nothing.
 */
export class KeyPool {
  readonly changes = new ChangeFeed<PoolEvent>();

  private readonly clock: Clock;
  private readonly families: FamilyTable;
  private readonly allowedFamilies: ReadonlySet<string> | null;
  private readonly reuseDelayMs: number;
  private readonly leaseTtlMs: number;
  private readonly reportLimits: { maxResetMs: number; defaultCooldownMs: number; maxCooldownMs: number };
  private readonly maxWaitersPerFamily: number;
  private readonly keyHasher: KeyHasher;

  private readonly keys = new Map<string, KeyEntry>();
  private readonly modelCache = new Map<string, ResolvedTarget>();
  private readonly index = new SelectionIndex();
  private readonly leases: LeaseBook<KeyEntry>;
  private readonly waiters: WaiterQueues;
  private wakeTimer: Timer | undefined;
  private wakeAt = Infinity;
  private closed = false;
  /** The last admin stamp handed out (see KeyEntry.adminStamp). */
  private adminStamps = 0;

  constructor(options: PoolOptions) {
    const o = { ...POOL_DEFAULTS, ...definedOnly(options) };
    for (const name of Object.keys(POOL_DEFAULTS) as (keyof typeof POOL_DEFAULTS)[]) {
      const v = o[name];
      if (!Number.isFinite(v) || v < 0) throw new RangeError(`pool option ${name} must be a number >= 0, not ${v}`);
    }
    this.clock = options.clock;
    this.families = options.families ?? FamilyTable.builtIn();
    this.allowedFamilies = options.allowedFamilies ?? null;
    this.reuseDelayMs = o.reuseDelayMs;
    this.leaseTtlMs = o.leaseTtlMs;
    this.reportLimits = {
      maxResetMs: o.maxResetMs,
      defaultCooldownMs: o.defaultCooldownMs,
      maxCooldownMs: o.maxCooldownMs,
    };
    this.maxWaitersPerFamily = o.maxWaitersPerFamily;
    this.keyHasher = options.keyHasher ?? hashKey;
    this.leases = new LeaseBook(this.clock, (lease) => this.onLeaseExpired(lease));
    this.waiters = new WaiterQueues(this.clock, {
      onDeadline: (waiter) => this.onWaiterDeadline(waiter),
      onLeave: () => this.planWake(),
    });
  }

  /** Keys in the pool. */
  get size(): number {
    return this.keys.size;
  }

  // ---------------------------------------------------------------- keys

  /**
   * Adds keys. A key already in the pool (same provider, secret and organization) counts as a
   * duplicate and keeps its state. All-or-nothing: one bad spec rejects the whole call.
   */
  addKeys(specs: KeySpec[]): { keyHashes: string[]; added: number; duplicates: number } {
    if (!Array.isArray(specs)) throw invalidArgument("keys must be a list");
    // New entries go straight into the key map (a second map of 100,000 entries at start was
    // pure garbage) and are taken out again if a later spec is refused. They are indexed and
    // announced only once every spec has passed.
    const fresh: KeyEntry[] = [];
    const keyHashes: string[] = new Array(specs.length);
    let duplicates = 0;
    try {
      for (let i = 0; i < specs.length; i++) {
        const spec = specs[i];
        if (!isProviderId(spec?.provider)) {
          throw invalidArgument(
            `keys[${i}]: provider ${JSON.stringify(spec?.provider ?? "")} is not one of ${PROVIDERS.map((p) => p.id).join(", ")}`,
          );
        }
        checkKeySecret(spec.key, `keys[${i}]`);
        const key = spec.key.trim();
        const organizationId = spec.organizationId ?? "";
        if (organizationId !== "") checkText(`keys[${i}]: organization id`, organizationId, LIMITS.organizationIdBytes);
        const modelFamilies = this.familiesForSpec(spec, i);
        const keyHash = this.keyHasher(spec.provider, key, organizationId);
        keyHashes[i] = keyHash;
        const existing = this.keys.get(keyHash);
        if (existing) {
          // A key the checker bound to its default organization keeps the hash of its spec.
          if (existing.secret === key && existing.provider === spec.provider) {
            duplicates++;
            continue;
          }
          throw new PoolError(
            ErrorCode.AlreadyExists,
            `keys[${i}]: its key hash ${keyHash} already belongs to a different key (a hash collision); the key was not added`,
          );
        }
        const entry = newEntry({
          secret: key,
          keyHash,
          provider: spec.provider,
          modelFamilies,
          organizationId,
          trial: spec.trial === true,
          familiesPinned: (spec.modelFamilies?.length ?? 0) > 0,
        });
        this.keys.set(keyHash, entry);
        fresh.push(entry);
      }
    } catch (error) {
      for (const entry of fresh) this.keys.delete(entry.keyHash);
      throw error;
    }
    const now = this.clock.now();
    for (const entry of fresh) {
      this.index.add(entry, now);
      this.emit(entry, "added");
    }
    if (fresh.length > 0) this.serveWaiters();
    return { keyHashes, added: fresh.length, duplicates };
  }

  private familiesForSpec(spec: KeySpec, i: number): readonly string[] {
    const known = this.families.familiesOf(spec.provider);
    const asked = spec.modelFamilies ?? [];
    if (!Array.isArray(asked)) throw invalidArgument(`keys[${i}]: model families must be a list`);
    if (asked.length === 0) return providerInfo(spec.provider).defaultFamilies;
    for (const family of asked) {
      if (typeof family !== "string" || !known.has(family)) {
        throw invalidArgument(
          `keys[${i}]: ${JSON.stringify(family)} is not a ${spec.provider} model family (known: ${[...known].join(", ")})`,
        );
      }
    }
    return [...new Set(asked)];
  }

  removeKey(keyHash: string): void {
    const entry = this.mustGet(keyHash);
    this.index.remove(entry);
    // Its open leases stay in the book until they end; they no longer match any key.
    this.keys.delete(keyHash);
    if (this.changes.size > 0) {
      this.changes.publish({
        type: "removed",
        keyHash,
        provider: entry.provider,
        modelFamilies: [...entry.modelFamilies],
      });
    }
    this.serveWaiters();
  }

  disableKey(keyHash: string, state: "disabled" | "revoked" | "over_quota" = "disabled", reason?: string): KeyStatus {
    if (!DISABLE_STATES.has(state)) {
      throw invalidArgument(`state ${JSON.stringify(state)} is not one of disabled, revoked, over_quota`);
    }
    const text = reason?.trim() || DEFAULT_REASONS[state];
    checkText("reason", text, LIMITS.reasonBytes);
    const entry = this.mustGet(keyHash);
    entry.state = state;
    entry.stateReason = text;
    entry.adminStamp = ++this.adminStamps;
    this.index.remove(entry);
    this.emit(entry, "disabled");
    this.serveWaiters();
    return toStatus(entry);
  }

  /** The operator's word: brings a key back to ACTIVE from any state (nothing else revives REVOKED). */
  enableKey(keyHash: string): KeyStatus {
    const entry = this.mustGet(keyHash);
    entry.adminStamp = ++this.adminStamps;
    if (entry.state !== "active") {
      entry.state = "active";
      entry.stateReason = "";
      this.index.add(entry, this.clock.now());
      this.emit(entry, "enabled");
      this.serveWaiters();
    }
    return toStatus(entry);
  }

  // ---------------------------------------------------------------- checks (docs/checker.md)

  /** What the key checker needs to check a key; undefined when it is gone or DISABLED by an operator. */
  checkSubject(keyHash: string): CheckSubject | undefined {
    const entry = this.keys.get(keyHash);
    if (!entry || entry.state === "disabled") return undefined;
    return {
      keyHash,
      provider: entry.provider,
      secret: entry.secret,
      organizationId: entry.organizationId,
      trial: entry.trial,
      familiesPinned: entry.familiesPinned,
      firstCheck: entry.lastChecked === 0,
      adminStamp: entry.adminStamp,
    };
  }

  /**
   * Applies a completed check as one change (clones included, so that storage commits the
   * finding and its clones together). Dropped when the key left the pool, or an operator
   * disabled, enabled or replaced it after the check started.
   */
  applyFinding(subject: CheckSubject, finding: KeyFinding): FindingResult {
    const entry = this.keys.get(subject.keyHash);
    if (!entry || entry.secret !== subject.secret) return { applied: false, why: "removed" };
    if (entry.state === "disabled") return { applied: false, why: "disabled" };
    if (entry.adminStamp !== subject.adminStamp) return { applied: false, why: "operator_changed" };
    const now = this.clock.now();
    const wasIndexed = entry.state === "active";
    if (wasIndexed) this.index.remove(entry);

    const families = this.knownFamilies(entry.provider, finding.modelFamilies);
    if (families && !entry.familiesPinned) {
      entry.modelFamilies = internFamilies(families);
      entry.has32k = families.includes("gpt4-32k");
    }
    if (finding.trial !== undefined) entry.trial = finding.trial;
    const unbound = entry.organizationId === "";
    if (unbound && finding.organizationId) {
      checkText("organization id", finding.organizationId, LIMITS.organizationIdBytes);
      entry.organizationId = finding.organizationId;
    }
    if (finding.state === "active") {
      entry.state = "active";
      entry.stateReason = "";
    } else if (finding.state) {
      entry.state = finding.state;
      entry.stateReason = truncateReason(finding.reason || `the upstream reported the key ${finding.state.replace("_", " ")}`);
    }
    entry.lastChecked = Math.max(1, now);
    if (entry.state === "active") this.index.add(entry, now);
    this.emit(entry, "checked");

    const clones: string[] = [];
    if (unbound) {
      for (const organizationId of new Set(finding.cloneOrganizations ?? [])) {
        if (organizationId === "" || organizationId === entry.organizationId) continue;
        checkText("organization id", organizationId, LIMITS.organizationIdBytes);
        const keyHash = this.keyHasher(entry.provider, entry.secret, organizationId);
        if (this.keys.has(keyHash)) continue;
        const clone = newEntry({
          secret: entry.secret,
          keyHash,
          provider: entry.provider,
          modelFamilies: entry.modelFamilies,
          organizationId,
          trial: entry.trial,
          familiesPinned: entry.familiesPinned,
        });
        this.keys.set(keyHash, clone);
        this.index.add(clone, now);
        this.emit(clone, "added");
        clones.push(keyHash);
      }
    }
    this.serveWaiters();
    return { applied: true, clones };
  }

  /** The finding's families that this pool knows, in order without repeats; undefined when none. */
  private knownFamilies(provider: ProviderId, families: readonly string[] | undefined): string[] | undefined {
    if (!families) return undefined;
    const known = this.families.familiesOf(provider);
    const kept = [...new Set(families)].filter((f) => known.has(f));
    return kept.length > 0 ? kept : undefined;
  }

  /**
   * RecheckKeys: marks the named keys (all keys when none is named) as never checked, so that
   * the checker takes them first. Keys an operator DISABLED are left alone (EnableKey first).
   * All or nothing: an unknown hash is NotFound and marks nothing. Returns the keys marked.
   */
  markForCheck(keyHashes: readonly string[] = []): number {
    const entries = keyHashes.length > 0 ? [...new Set(keyHashes)].map((h) => this.mustGet(h)) : [...this.keys.values()];
    let marked = 0;
    for (const entry of entries) {
      if (entry.state === "disabled") continue;
      marked++;
      if (entry.lastChecked === 0) continue;
      entry.lastChecked = 0;
      this.emit(entry, "check_requested");
    }
    return marked;
  }

  // ---------------------------------------------------------------- leasing

  /** A ready key now, or PoolError (see checkTarget; ResourceExhausted carries retryAfterMs). */
  lease(req: LeaseRequest): Lease {
    this.checkOpen();
    const target = this.checkTarget(req);
    const now = this.clock.now();
    // Waiters queued earlier for this family come first.
    if (this.waiters.size > 0) this.serveQueue(this.waiters.queueFor(target), now);
    const entry = this.index.pick(target.provider, target.family, target.embedding, now);
    if (!entry) throw this.busyError(target, now);
    return this.grant(entry, target, now);
  }

  /** Like lease, but waits up to maxWaitMs for a key (FIFO per family), or until signal aborts. */
  leaseWhenReady(req: LeaseRequest & { maxWaitMs: number; signal?: AbortSignal }): Promise<Lease> {
    try {
      this.checkOpen();
      const target = this.checkTarget(req);
      const now = this.clock.now();
      this.serveQueue(this.waiters.queueFor(target), now);
      if (this.waiters.lengthOf(target) === 0) {
        const entry = this.index.pick(target.provider, target.family, target.embedding, now);
        if (entry) return Promise.resolve(this.grant(entry, target, now));
      }
      if (req.signal?.aborted) throw new PoolError(ErrorCode.Cancelled, "the lease request was cancelled");
      // A wait past what a timer can express (24.8 days) is capped there.
      const maxWaitMs = Math.min(Number.isFinite(req.maxWaitMs) ? req.maxWaitMs : 0, MAX_TIMER_DELAY_MS);
      if (maxWaitMs <= 0) throw this.busyError(target, now);
      if (this.waiters.lengthOf(target) >= this.maxWaitersPerFamily) {
        const { lockoutMs } = this.index.lockout(target.provider, target.family, target.embedding, now);
        throw resourceExhausted(
          `${this.maxWaitersPerFamily} lease requests are already waiting for ${target.provider} family ${target.family}; retry in ${lockoutMs} ms`,
          lockoutMs,
        );
      }
      const promise = this.waiters.wait(target, maxWaitMs, req.signal);
      this.planWake();
      return promise;
    } catch (error) {
      return Promise.reject(error);
    }
  }

  /** How long until a key for this model is ready (0: now); noActiveKeys when none serves it. */
  lockout(req: LeaseRequest): { lockoutMs: number; noActiveKeys: boolean } {
    const target = this.checkTarget(req, false);
    return this.index.lockout(target.provider, target.family, target.embedding, this.clock.now());
  }

  /** Model → provider and family, or InvalidArgument naming the model. */
  resolveModel(model: string, provider?: ProviderId): { provider: ProviderId; family: string } {
    const { provider: p, family } = this.resolveCached(model, provider);
    return { provider: p, family };
  }

  /**
   * Resolution through a small cache: proxies ask for the same few model names all day, and
   * walking the pattern table each time was a visible share of a lease. Only valid names are
   * cached; the cache is dropped whole when it grows past its bound (names are client input).
   */
  private resolveCached(model: string, provider?: ProviderId): ResolvedTarget {
    const cacheKey = provider === undefined ? model : `${provider}\u0000${model}`;
    const hit = typeof model === "string" ? this.modelCache.get(cacheKey) : undefined;
    if (hit) return hit;
    checkModel(model);
    if (provider !== undefined && !isProviderId(provider)) {
      throw invalidArgument(`provider ${JSON.stringify(provider)} is not one of ${PROVIDERS.map((p) => p.id).join(", ")}`);
    }
    const resolved = this.families.resolve(model, provider);
    const target: ResolvedTarget = {
      ...resolved,
      embedding: providerInfo(resolved.provider).embeddingModels.test(model),
    };
    if (this.modelCache.size >= MODEL_CACHE_LIMIT) this.modelCache.clear();
    this.modelCache.set(cacheKey, target);
    return target;
  }

  /**
   * Validates a request in CONTRACT.md's order: model (InvalidArgument), allowed family
   * (PermissionDenied), then an ACTIVE eligible key (FailedPrecondition) when `needKeys`.
   */
  private checkTarget(req: LeaseRequest, needKeys = true): Target {
    const { provider, family, embedding } = this.resolveCached(req?.model, req?.provider);
    if (this.allowedFamilies && !this.allowedFamilies.has(family)) {
      throw permissionDenied(`the operator does not allow the model family ${family} (ALLOWED_MODEL_FAMILIES)`);
    }
    const target = { provider, family, embedding, model: req.model };
    if (needKeys && !this.index.hasEligible(provider, family, embedding)) {
      throw this.noKeysError(target);
    }
    return target;
  }

  private noKeysError(target: Target): PoolError {
    const which = target.embedding ? " (embedding models need a non-trial key)" : "";
    return failedPrecondition(`no active ${target.provider} key serves the model family ${target.family}${which}`);
  }

  private busyError(target: Target, now: number): PoolError {
    const { lockoutMs } = this.index.lockout(target.provider, target.family, target.embedding, now);
    return resourceExhausted(
      `every ${target.provider} key serving ${target.family} is busy; the next is ready in ${lockoutMs} ms`,
      lockoutMs,
    );
  }

  private grant(entry: KeyEntry, target: Target, now: number): Lease {
    const lease = this.leases.open(entry, now + this.leaseTtlMs);
    entry.lastUsed = now;
    entry.leaseCount++;
    entry.inFlight++;
    entry.holdUntil = now + this.reuseDelayMs;
    entry.readyAt = Math.max(entry.holdUntil, entry.cooldownUntil);
    this.index.reposition(entry, now);
    this.emit(entry, "leased");
    return {
      key: entry.secret,
      keyHash: entry.keyHash,
      provider: entry.provider,
      modelFamily: target.family,
      organizationId: entry.organizationId,
      leaseId: lease.id,
      leaseExpiresAt: lease.expiresAt,
    };
  }

  private onLeaseExpired(lease: OpenLease<KeyEntry>): void {
    const entry = lease.owner;
    if (this.keys.get(entry.keyHash) !== entry) return; // removed or replaced since
    entry.inFlight--;
    this.emit(entry, "lease_ended");
  }

  // ---------------------------------------------------------------- waiters

  /** Serves waiting leases whose keys are ready, then plans the next wake-up. */
  private serveWaiters(): void {
    if (this.waiters.size === 0) return this.planWake();
    const now = this.clock.now();
    for (const queue of this.waiters.active()) this.serveQueue(queue, now);
    this.planWake();
  }

  /** Hands ready keys to a queue's waiters in order; fails them all if no key serves them anymore. */
  private serveQueue(queue: WaiterQueue | undefined, now: number): void {
    if (!queue) return;
    const { provider, family, embedding } = queue.target;
    for (let waiter = this.waiters.first(queue); waiter; waiter = this.waiters.first(queue)) {
      const entry = this.index.pick(provider, family, embedding, now);
      if (!entry) {
        if (this.index.lockout(provider, family, embedding, now).noActiveKeys) {
          const error = this.noKeysError({ ...queue.target, model: "" });
          for (const w of [...queue.waiters.values()]) if (this.waiters.take(w)) w.reject(error);
        }
        return;
      }
      this.waiters.take(waiter);
      waiter.resolve(this.grant(entry, { ...queue.target, model: "" }, now));
    }
  }

  private onWaiterDeadline(waiter: Waiter): void {
    const now = this.clock.now();
    this.serveQueue(waiter.queue, now);
    if (this.waiters.take(waiter)) {
      const { provider, family, embedding } = waiter.queue.target;
      waiter.reject(this.busyError({ provider, family, embedding, model: "" }, now));
    }
    this.planWake();
  }

  /** One clock timer for the earliest ready_at that a waiter is waiting for. */
  private planWake(): void {
    let at = Infinity;
    if (!this.closed && this.waiters.size > 0) {
      const now = this.clock.now();
      for (const queue of this.waiters.active()) {
        const { provider, family, embedding } = queue.target;
        const { lockoutMs, noActiveKeys } = this.index.lockout(provider, family, embedding, now);
        if (!noActiveKeys) at = Math.min(at, now + lockoutMs);
      }
    }
    if (at === this.wakeAt) return;
    this.wakeTimer?.cancel();
    this.wakeTimer = undefined;
    this.wakeAt = at;
    if (at !== Infinity) {
      this.wakeTimer = this.clock.setTimer(at - this.clock.now(), () => {
        this.wakeTimer = undefined;
        this.wakeAt = Infinity;
        this.serveWaiters();
      });
    }
  }

  // ---------------------------------------------------------------- reports and usage

  /** Applies an upstream response's status and headers (POLICY.md "Reports"). */
  reportRateLimit(r: ReportInput): {
    readyAt: number;
  } {
    const headers = r.headers ?? {};
    checkStatusCode(r.statusCode);
    checkHeaders(headers);
    const entry = this.mustGet(r.keyHash);
    const now = this.clock.now();
    if (this.learnFromError(entry, r)) return { readyAt: entry.readyAt };
    const effect = planReport(r.statusCode, headers, providerInfo(entry.provider).rateLimitHeaders, now, this.reportLimits);
    switch (effect.kind) {
      case "none":
        break;
      case "revoke":
        if (entry.state !== "revoked") {
          entry.state = "revoked";
          entry.stateReason = "upstream answered 401 Unauthorized: the key was rejected";
          this.index.remove(entry);
          this.emit(entry, "revoked");
          this.serveWaiters();
        }
        break;
      case "cooldown": {
        entry.rateLimitedAt = now;
        entry.cooldownUntil = Math.max(entry.cooldownUntil, now + effect.waitMs);
        this.retime(entry, now);
        this.emit(entry, "reported");
        break;
      }
      case "hold": {
        const before = entry.holdUntil;
        entry.holdUntil = now + effect.waitMs;
        if (entry.holdUntil !== before) {
          this.retime(entry, now);
          this.emit(entry, "reported");
          this.serveWaiters();
        }
        break;
      }
    }
    return { readyAt: entry.readyAt };
  }

  /**
   * What a proxy's upstream error says about the key itself (POLICY.md "Reports"): 404
   * model_not_found takes the model's family off the key; 429 insufficient_quota makes it
   * OVER_QUOTA. True when the report was such an error and has been applied.
   */
  private learnFromError(entry: KeyEntry, r: ReportInput): boolean {
    if (r.errorType) checkText("error_type", r.errorType, LIMITS.errorFieldBytes);
    if (r.errorCode) checkText("error_code", r.errorCode, LIMITS.errorFieldBytes);
    const says = (what: string) => r.errorCode === what || r.errorType === what;
    if (r.statusCode === 404 && says("model_not_found") && r.model) {
      const { family } = this.resolveCached(r.model, entry.provider);
      if (!entry.modelFamilies.includes(family)) return true;
      const active = entry.state === "active";
      if (active) this.index.remove(entry);
      const families = entry.modelFamilies.filter((f) => f !== family);
      entry.modelFamilies = internFamilies(families);
      entry.has32k = families.includes("gpt4-32k");
      if (active) this.index.add(entry, this.clock.now());
      this.emit(entry, "family_withdrawn");
      this.serveWaiters();
      return true;
    }
    if (r.statusCode === 429 && (says("insufficient_quota") || says("billing_not_active"))) {
      if (entry.state === "over_quota") return true;
      // An operator's DISABLED stays; a REVOKED key stays revoked.
      if (entry.state !== "active") return true;
      entry.state = "over_quota";
      entry.stateReason = `a proxy reported 429 ${says("insufficient_quota") ? "insufficient_quota" : "billing_not_active"}: the key's quota or billing is exhausted`;
      this.index.remove(entry);
      this.emit(entry, "over_quota");
      this.serveWaiters();
      return true;
    }
    return false;
  }

  private retime(entry: KeyEntry, now: number): void {
    entry.readyAt = Math.max(entry.holdUntil, entry.cooldownUntil);
    this.index.reposition(entry, now);
  }

  /** Counts a prompt's tokens for the model's family; ends the named lease if it is open. */
  incrementUsage(u: { keyHash: string; model: string; inputTokens: number; outputTokens: number; leaseId?: string }): void {
    checkModel(u.model);
    checkTokens("input_tokens", u.inputTokens);
    checkTokens("output_tokens", u.outputTokens);
    const entry = this.mustGet(u.keyHash);
    const { family } = this.resolveCached(u.model, entry.provider);
    entry.promptCount++;
    const usage = usageOf(entry, family);
    usage.inputTokens += u.inputTokens;
    usage.outputTokens += u.outputTokens;
    usage.prompts++;
    // An unknown or expired lease id is fine: the usage still counts.
    if (u.leaseId && this.leases.get(u.leaseId)?.owner === entry) {
      this.leases.end(u.leaseId);
      entry.inFlight--;
    }
    this.emit(entry, "usage");
  }

  // ---------------------------------------------------------------- reading

  /** Keys matching the filter (provider; any of the families), sorted by keyHash. */
  listKeys(filter?: { provider?: ProviderId; modelFamilies?: string[] }): KeyStatus[] {
    const families = filter?.modelFamilies?.length ? new Set(filter.modelFamilies) : undefined;
    const out: KeyStatus[] = [];
    for (const entry of this.keys.values()) {
      if (filter?.provider && entry.provider !== filter.provider) continue;
      if (families && !entry.modelFamilies.some((f) => families.has(f))) continue;
      out.push(toStatus(entry));
    }
    return out.sort((a, b) => (a.keyHash < b.keyHash ? -1 : a.keyHash > b.keyHash ? 1 : 0));
  }

  /** How many keys each provider has in the pool (providers without keys are absent). No copies. */
  countByProvider(): Partial<Record<ProviderId, number>> {
    const counts: Partial<Record<ProviderId, number>> = {};
    for (const entry of this.keys.values()) counts[entry.provider] = (counts[entry.provider] ?? 0) + 1;
    return counts;
  }

  getKey(keyHash: string): KeyStatus | undefined {
    const entry = this.keys.get(keyHash);
    return entry && toStatus(entry);
  }

  /** The secret, for durable storage only. */
  secretOf(keyHash: string): string | undefined {
    return this.keys.get(keyHash)?.secret;
  }

  /** Storage at start: adds or overwrites keys with their full state. Open leases are not restored. */
  restore(records: KeyRecord[]): void {
    const entries = records.map((record, i) => {
      if (!isProviderId(record?.provider)) throw invalidArgument(`records[${i}]: unknown provider`);
      checkKeySecret(record.key, `records[${i}]`);
      if (typeof record.keyHash !== "string" || record.keyHash.length === 0) {
        throw invalidArgument(`records[${i}]: key hash missing`);
      }
      return entryFromRecord(record);
    });
    const now = this.clock.now();
    for (const entry of entries) {
      const old = this.keys.get(entry.keyHash);
      if (old) this.index.remove(old);
      this.keys.set(entry.keyHash, entry);
      if (entry.state === "active") this.index.add(entry, now);
      this.emit(entry, "restored");
    }
    this.serveWaiters();
  }

  /** Cancels every timer and rejects every waiter with Unavailable. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.leases.close();
    this.wakeTimer?.cancel();
    this.wakeTimer = undefined;
    this.wakeAt = Infinity;
    this.waiters.rejectAll(() => new PoolError(ErrorCode.Unavailable, "the key pool is shutting down"));
  }

  // ---------------------------------------------------------------- helpers

  private checkOpen(): void {
    if (this.closed) throw new PoolError(ErrorCode.Unavailable, "the key pool is shutting down");
  }

  private mustGet(keyHash: string): KeyEntry {
    const entry = typeof keyHash === "string" ? this.keys.get(keyHash) : undefined;
    if (!entry) {
      // A client that sends the key itself by mistake must not see it echoed into errors and
      // logs: only a value shaped like a key hash is quoted.
      if (typeof keyHash === "string" && KEY_HASH_SHAPE.test(keyHash)) {
        throw notFound(`no key with hash ${JSON.stringify(keyHash)} is in the pool`);
      }
      throw notFound("no key with that hash is in the pool (the value is not shown: it is not shaped like a key hash, e.g. oai-0123456789abcdef)");
    }
    return entry;
  }

  /** One event per change, with a fresh status; skipped when nobody listens. */
  private emit(entry: KeyEntry, cause: ChangeCause): void {
    if (this.changes.size > 0) this.changes.publish({ type: "updated", cause, status: toStatus(entry) });
  }
}

/** A reason cut to the contract's limit (upstream messages can be long). */
function truncateReason(text: string): string {
  if (Buffer.byteLength(text, "utf8") <= LIMITS.reasonBytes) return text;
  return Buffer.from(text, "utf8").subarray(0, LIMITS.reasonBytes - 3).toString("utf8").replace(/\uFFFD$/, "") + "...";
}

function definedOnly<T extends object>(o: T): Partial<T> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>;
}
