/**
 * The pool kept in Redis (docs/replicas.md): the same PoolApi the RPC services call on the
 * in-memory KeyPool, for any number of replicas sharing one Redis. Every call that changes the
 * pool is one Lua script (pool-scripts.ts), so it is atomic across replicas and costs one round
 * trip; its time is Redis `TIME`, so replicas with skewed clocks agree on ready_at. What stays in
 * this process is only what no other replica needs: its Lease waiters (replica-waiters.ts) and a
 * read model (pool-mirror.ts) that the change stream keeps current (change-follower.ts), which
 * the watch hub, the key checker and the metrics census follow as they follow KeyPool.
 *
 * Input is checked here with the domain's own checks before any script runs, so that both pools
 * refuse the same input with the same words; the scripts answer only what needs the pool's state.
 */
import { randomBytes } from "node:crypto";
import type Redis from "ioredis";
import { MAX_TIMER_DELAY_MS, type Clock, type Timer } from "../domain/clock";
import { ErrorCode, PoolError } from "../domain/errors";
import type { CheckSubject, FindingResult, KeyFinding } from "../domain/key-check";
import { findingReason, knownFamilies } from "../domain/key-checks";
import type { KeyFilter } from "../domain/key-filter";
import { hashKey, type KeyHasher } from "../domain/key-hash";
import type { LeaseRequest } from "../domain/key-pool";
import { checkSpec, disableReason, hashCollision, type CheckedSpec } from "../domain/key-spec-check";
import { keyNotFound } from "../domain/key-table";
import { everyKeyBusy, familyQueueFull, noKeyServes, waitersFull } from "../domain/lease-errors";
import { FamilyTable } from "../domain/model-families";
import { ModelResolver } from "../domain/model-resolver";
import { resolvePoolOptions, type PoolOptions } from "../domain/pool-options";
import { PROVIDERS, providerInfo } from "../domain/providers";
import { planReport } from "../domain/rate-limit-report";
import { errorLesson, REVOKED_BY_UPSTREAM, type RateLimitReport, type UsageReport } from "../domain/report-handling";
import type { ChangeCause, DisableState, KeySpec, KeyStatus, Lease, PoolEvent, ProviderId } from "../domain/types";
import { LIMITS, checkHeaders, checkModel, checkStatusCode, checkText, checkTokens } from "../domain/validation";
import type { WaitTarget } from "../domain/waiters";
import { ChangeFollower, FOLLOW_BLOCK_MS, type StreamPosition } from "./change-follower";
import { FINGERPRINT, secretFingerprint, statusFromPacked, statusFromPackedText, type PackedStatus } from "./key-fields";
import { PoolMirror } from "./pool-mirror";
import { POOL_LAYOUT, POOL_SCRIPTS, type PoolScriptName } from "./pool-scripts";
import { REDIS_VARIABLE, StartupCheckError } from "./redis-connection";
import { redisUnavailable } from "./redis-failure";
import { ReplicaWaiters, type LeaseAttempt } from "./replica-waiters";

/** What a replica logs about its pool (a pino logger fits). Never given a secret. */
export interface PoolLogger {
  info(fields: object, message: string): void;
  warn(fields: object, message: string): void;
  error(fields: object, message: string): void;
}

/** The tunables RedisPool takes from settings.pool (pool-options.ts): one place for each. */
export type RedisPoolTunables = Omit<PoolOptions, "clock" | "families" | "allowedFamilies">;

export interface RedisPoolOptions {
  /** An ioredis client for the pool's commands (the caller opens and closes it). */
  redis: Redis;
  /**
   * The pool's name in Redis (KEYPOOL_REDIS_PREFIX): every key is `{prefix}:...`, one hash tag,
   * so that a pool lives in one Redis Cluster slot and several pools may share one Redis.
   */
  prefix?: string;
  /** Timers (waiter deadlines, wake-ups, lease expiry). */
  clock: Clock;
  /** Reuse delay, lease TTL, report caps, waiter limits: settings.pool. */
  tunables?: RedisPoolTunables;
  /** Model → family table; default: the built-in one. */
  families?: FamilyTable;
  /** ALLOWED_MODEL_FAMILIES; null/absent: every family. */
  allowedFamilies?: ReadonlySet<string> | null;
  /** The configured keys (OPENAI_KEY, ANTHROPIC_KEY, KEYPOOL_KEYS_FILE), merged in at start. */
  configured?: readonly KeySpec[];
  logger?: PoolLogger;
  /** Entries the change stream keeps (XADD MAXLEN ~); default STREAM_MAX_LENGTH. */
  streamMaxLength?: number;
  /** How long a read waits for this replica to follow the stream; default CATCH_UP_TIMEOUT_MS. */
  catchUpTimeoutMs?: number;
  /**
   * Tests only: the scripts take their time from `clock.now()` instead of Redis `TIME`, so that a
   * ManualClock drives the pool in Redis as it drives KeyPool. Production never sets it.
   */
  scriptTimeFromClock?: boolean;
}

/** Entries kept in the change stream: a replica away for longer than this many changes reloads. */
const STREAM_MAX_LENGTH = 10_000;
const CATCH_UP_TIMEOUT_MS = 5_000;
const DEFAULT_PREFIX = "keypool";
/** How much longer than its block a stream read may take before it counts as failed. */
const READ_MARGIN_MS = 5_000;
/** Keys per script when the configured keys are merged at start. */
const BATCH = 1000;
/** Merge batches sent before the first answer: what the replica holds in flight, in keys, is this times BATCH. */
const MERGE_IN_FLIGHT = 3;
/** Keys per snapshot page: a few milliseconds of Redis's time each. */
const SNAPSHOT_PAGE = 2000;

/**
 * Changes after which no key is ready that was not before (a lease, usage, a lease's end, a
 * recheck mark): they do not wake the waiters, so that the busiest changes cost no attempts.
 */
const NEVER_FREES_A_KEY: ReadonlySet<ChangeCause> = new Set(["leased", "usage", "lease_ended", "check_requested"]);

/** The names of the pool's keys in Redis: one hash tag, `{prefix}`. */
function poolKeyPrefix(prefix: string): string {
  return `{${prefix}}:`;
}

type Reply = (string | number | Reply)[];

const leaseRandom = () => randomBytes(8).toString("hex");

export class RedisPool {
  /** The replica's read model: its change feed and synchronous reads (WatchedPool, the census). */
  readonly mirror: PoolMirror;

  private readonly redis: Redis;
  private readonly reader: Redis;
  private readonly keyPrefix: string;
  private readonly anchorKey: string;
  private readonly clock: Clock;
  private readonly tunables: ReturnType<typeof resolvePoolOptions>;
  private readonly families: FamilyTable;
  private readonly models: ModelResolver;
  private readonly keyHasher: KeyHasher;
  private readonly logger: PoolLogger | undefined;
  private readonly maxLength: string;
  private readonly catchUpTimeoutMs: number;
  private readonly scriptTimeFromClock: boolean;
  private readonly waiters: ReplicaWaiters;
  private follower: ChangeFollower | undefined;
  private expiryTimer: Timer | undefined;
  private expiryAt = Infinity;
  private closed = false;

  private constructor(options: RedisPoolOptions) {
    this.redis = options.redis;
    // XREAD BLOCK holds its connection: the follower reads on one of its own, whose bound on a
    // command leaves room for the block (a Redis that stops answering still fails the read).
    this.reader = this.followerConnection(options.redis);
    this.keyPrefix = poolKeyPrefix(options.prefix ?? DEFAULT_PREFIX);
    this.anchorKey = `${this.keyPrefix}keys`;
    this.clock = options.clock;
    this.tunables = resolvePoolOptions({ clock: options.clock, ...options.tunables });
    this.families = options.families ?? FamilyTable.builtIn();
    this.models = new ModelResolver(this.families, options.allowedFamilies ?? null);
    this.keyHasher = options.tunables?.keyHasher ?? hashKey;
    this.logger = options.logger;
    this.maxLength = String(options.streamMaxLength ?? STREAM_MAX_LENGTH);
    this.catchUpTimeoutMs = options.catchUpTimeoutMs ?? CATCH_UP_TIMEOUT_MS;
    this.scriptTimeFromClock = options.scriptTimeFromClock === true;
    this.mirror = new PoolMirror(this.clock);
    for (const [name, lua] of Object.entries(POOL_SCRIPTS)) {
      if (!(name in this.redis)) this.redis.defineCommand(name, { numberOfKeys: 1, lua });
    }
    this.waiters = new ReplicaWaiters(this.clock, {
      attempt: (target) => this.attempt(target),
      release: (lease) => void this.endLease(lease).catch(() => {}),
      onFailure: (error) => this.logFailure("a waiting lease could not reach Redis; trying again", error),
    });
  }

  /**
   * Opens the pool: loads the read model, follows the change stream from the instant of that
   * load, and merges the configured keys against what it loaded: only keys missing from the pool
   * or whose configuration changes them go to Redis (scripts that each add only what is still
   * missing, so that replicas starting together make one pool); their changes arrive through the
   * stream like any other replica's.
   */
  static async open(options: RedisPoolOptions): Promise<RedisPool> {
    const pool = new RedisPool(options);
    try {
      // Before any round trip: a configuration that cannot be used stops the start at once.
      const configured = pool.checkConfigured(options.configured ?? []);
      if (pool.reader.status === "wait") await pool.reader.connect();
      await pool.ensureLayout();
      const position = await pool.loadMirror(configured.byHash);
      pool.follower = new ChangeFollower(
        {
          reader: pool.reader,
          streamKey: `${pool.keyPrefix}changes`,
          mirror: pool.mirror,
          resnapshot: () => pool.loadMirror(),
          onApplied: (events) => pool.onApplied(events),
          onHealth: (following, error) => {
            if (following) pool.logger?.info({}, "following the pool's changes in Redis again");
            else pool.logFailure("cannot read the pool's changes from Redis; retrying", error);
          },
        },
        position,
      );
      pool.follower.start();
      if (configured.list.length > 0) await pool.mergeConfigured(configured.list);
      await pool.catchUp();
      return pool;
    } catch (error) {
      await pool.close();
      throw error;
    }
  }

  /** Keys in the read model. */
  get size(): number {
    return this.mirror.size;
  }

  /** Lease calls waiting on this replica. */
  get waitingLeases(): number {
    return this.waiters.size;
  }

  /** The change feed of the read model: every change made through any replica. */
  get changes() {
    return this.mirror.changes;
  }

  // ---------------------------------------------------------------- leasing

  async lease(req: LeaseRequest): Promise<Lease> {
    this.checkOpen();
    const target = this.models.resolveAllowed(req?.model, req?.provider);
    const attempt = await this.attempt(target);
    if (attempt.kind === "granted") return attempt.lease;
    throw attempt.error;
  }

  async leaseWhenReady(req: LeaseRequest & { maxWaitMs: number; signal?: AbortSignal }): Promise<Lease> {
    this.checkOpen();
    const target = this.models.resolveAllowed(req?.model, req?.provider);
    // A wait past what a timer can express (24.8 days) is capped there.
    const maxWaitMs = Math.min(Number.isFinite(req.maxWaitMs) ? req.maxWaitMs : 0, MAX_TIMER_DELAY_MS);
    let lockoutMs = 0;
    // Waiters queued here earlier for this family come first: a request that may wait joins them.
    if (this.waiters.lengthOf(target) === 0 || maxWaitMs <= 0) {
      const attempt = await this.attempt(target);
      if (attempt.kind === "granted") return attempt.lease;
      if (attempt.kind === "nokeys" || maxWaitMs <= 0) throw attempt.error;
      lockoutMs = attempt.lockoutMs;
    }
    if (req.signal?.aborted) throw new PoolError(ErrorCode.Cancelled, "the lease request was cancelled");
    const familyFull = this.waiters.lengthOf(target) >= this.tunables.maxWaitersPerFamily;
    if (familyFull || this.waiters.size >= this.tunables.maxWaiters) {
      // Refused: its retry delay is the lockout, asked for now if no attempt told it.
      if (lockoutMs === 0) lockoutMs = (await this.lockoutOf(target)).lockoutMs;
      if (familyFull) throw familyQueueFull(this.tunables.maxWaitersPerFamily, target, lockoutMs);
      throw waitersFull(this.tunables.maxWaiters, lockoutMs);
    }
    return this.waiters.wait(target, maxWaitMs, req.signal);
  }

  async lockout(req: LeaseRequest): Promise<{ lockoutMs: number; noActiveKeys: boolean }> {
    return this.lockoutOf(this.models.resolveAllowed(req?.model, req?.provider));
  }

  private async lockoutOf(target: WaitTarget): Promise<{ lockoutMs: number; noActiveKeys: boolean }> {
    const [any, lockoutMs] = (await this.run("kpLockout", [target.provider, target.family, target.embedding ? "1" : "0"])) as [number, number];
    return any === 1 ? { lockoutMs, noActiveKeys: false } : { lockoutMs: 0, noActiveKeys: true };
  }

  resolveModel(model: string, provider?: ProviderId): { provider: ProviderId; family: string } {
    const { provider: p, family } = this.models.resolve(model, provider);
    return { provider: p, family };
  }

  /** One Lease script for the target. */
  private async attempt(target: WaitTarget): Promise<LeaseAttempt> {
    const reply = (await this.run("kpLease", [
      target.provider,
      target.family,
      target.embedding ? "1" : "0",
      this.tunables.reuseDelayMs,
      this.tunables.leaseTtlMs,
      leaseRandom(),
    ])) as Reply;
    if (reply[0] === "ok") {
      const [, key, keyHash, provider, organizationId, leaseId, expiresAt] = reply as string[];
      return {
        kind: "granted",
        lease: {
          key: key!,
          keyHash: keyHash!,
          provider: provider as ProviderId,
          modelFamily: target.family,
          organizationId: organizationId!,
          leaseId: leaseId!,
          leaseExpiresAt: Number(expiresAt),
        },
      };
    }
    if (reply[0] === "busy") {
      const lockoutMs = Number(reply[1]);
      return { kind: "busy", lockoutMs, error: everyKeyBusy(target, lockoutMs) };
    }
    return { kind: "nokeys", error: noKeyServes(target) };
  }

  /** Ends a lease nobody will use (its waiter left while the key was being leased). */
  private async endLease(lease: Lease): Promise<void> {
    await this.run("kpEndLease", [lease.leaseId]);
  }

  // ---------------------------------------------------------------- reports and usage

  async reportRateLimit(r: RateLimitReport): Promise<{ readyAt: number }> {
    const headers = r.headers ?? {};
    checkStatusCode(r.statusCode);
    checkHeaders(headers);
    const provider = this.providerOf(r?.keyHash);
    let kind: string;
    let arg: string | number = "";
    let invalid: unknown;
    try {
      const lesson = errorLesson(r, provider, this.models);
      if (lesson?.kind === "withdraw_family") [kind, arg] = [lesson.kind, lesson.family];
      else if (lesson?.kind === "over_quota") [kind, arg] = [lesson.kind, lesson.reason];
      else {
        const effect = planReport(r.statusCode, headers, providerInfo(provider).rateLimitHeaders, this.clock.now(), this.tunables);
        kind = effect.kind;
        if (effect.kind === "revoke") arg = REVOKED_BY_UPSTREAM;
        else if (effect.kind === "cooldown" || effect.kind === "hold") arg = effect.waitMs;
      }
    } catch (error) {
      // An unknown key is NotFound before its report is judged: the script says which.
      if (!(error instanceof PoolError)) throw error;
      [kind, invalid] = ["invalid", error];
    }
    const reply = (await this.run("kpReport", [r.keyHash, kind, arg])) as Reply;
    if (reply[0] === "notfound") throw keyNotFound(r.keyHash);
    if (reply[0] === "invalid") throw invalid;
    return { readyAt: Number(reply[1]) };
  }

  async incrementUsage(u: UsageReport): Promise<void> {
    checkModel(u.model);
    checkTokens("input_tokens", u.inputTokens);
    checkTokens("output_tokens", u.outputTokens);
    const provider = this.providerOf(u?.keyHash);
    let family = "";
    let invalid: unknown;
    try {
      family = this.models.resolve(u.model, provider).family;
    } catch (error) {
      if (!(error instanceof PoolError)) throw error;
      invalid = error;
    }
    const reply = (await this.run("kpUsage", [u.keyHash, family, u.inputTokens, u.outputTokens, u.leaseId ?? ""])) as Reply;
    if (reply[0] === "notfound") throw keyNotFound(u.keyHash);
    if (reply[0] === "invalid") throw invalid;
  }

  /**
   * The provider a key hash belongs to: the read model's word, else the hash's prefix (each
   * provider has its own). A hash that is neither cannot be in the pool: the script will say
   * NotFound, and its report is judged by OpenAI's rules meanwhile.
   */
  private providerOf(keyHash: string): ProviderId {
    const known = this.mirror.getKey(keyHash)?.provider;
    if (known) return known;
    const byPrefix = typeof keyHash === "string" ? PROVIDERS.find((p) => keyHash.startsWith(p.hashPrefix)) : undefined;
    return byPrefix?.id ?? "openai";
  }

  // ---------------------------------------------------------------- administration

  async addKeys(specs: KeySpec[]): Promise<{ keyHashes: string[]; added: number; duplicates: number }> {
    if (!Array.isArray(specs)) throw new PoolError(ErrorCode.InvalidArgument, "keys must be a list");
    const checked = specs.map((spec, i) => checkSpec(spec, i, this.families, this.keyHasher));
    const reply = (await this.run("kpAdd", ["add", packSpecs(checked)])) as Reply;
    if (reply[0] === "collision") {
      const i = Number(reply[1]);
      throw hashCollision(i, checked[i]!.keyHash);
    }
    return { keyHashes: checked.map((c) => c.keyHash), added: Number(reply[1]), duplicates: Number(reply[2]) };
  }

  async removeKey(keyHash: string): Promise<void> {
    const reply = (await this.run("kpRemove", [keyHash])) as Reply;
    if (reply[0] === "notfound") throw keyNotFound(keyHash);
  }

  async disableKey(keyHash: string, state: DisableState = "disabled", reason?: string): Promise<KeyStatus> {
    const text = disableReason(state, reason);
    const reply = (await this.run("kpDisable", [keyHash, state, text])) as Reply;
    if (reply[0] === "notfound") throw keyNotFound(keyHash);
    return statusFromPackedText(reply[1] as string);
  }

  async enableKey(keyHash: string): Promise<KeyStatus> {
    const reply = (await this.run("kpEnable", [keyHash])) as Reply;
    if (reply[0] === "notfound") throw keyNotFound(keyHash);
    return statusFromPackedText(reply[1] as string);
  }

  /** RecheckKeys: marks keys (all when none is named) for the checker; returns how many. */
  async markForCheck(keyHashes: readonly string[] = []): Promise<number> {
    const reply = (await this.run("kpMarkForCheck", [...keyHashes])) as Reply;
    if (reply[0] === "notfound") throw keyNotFound(String(reply[1]));
    return Number(reply[1]);
  }

  // ---------------------------------------------------------------- the key checker

  /** What the checker needs to check a key (its secret included); undefined when gone or DISABLED. */
  async checkSubject(keyHash: string): Promise<CheckSubject | undefined> {
    const reply = (await this.run("kpSubject", [keyHash])) as string[];
    if (reply.length === 0) return undefined;
    const [secret, provider, organizationId, trial, pinned, lastChecked, adminStamp, state] = reply;
    if (state === "disabled") return undefined;
    return {
      keyHash,
      provider: provider as ProviderId,
      secret: secret!,
      organizationId: organizationId ?? "",
      trial: trial === "1",
      familiesPinned: pinned === "1",
      firstCheck: Number(lastChecked) === 0,
      adminStamp: Number(adminStamp),
    };
  }

  /** Applies a completed check (with its clones) in one script, or drops it (key-checks.ts rules). */
  async applyFinding(subject: CheckSubject, finding: KeyFinding): Promise<FindingResult> {
    const bind = finding.organizationId || undefined;
    const clones = [...new Set(finding.cloneOrganizations ?? [])].filter((o) => o !== "" && o !== bind);
    if (bind !== undefined) checkText("organization id", bind, LIMITS.organizationIdBytes);
    for (const organizationId of clones) checkText("organization id", organizationId, LIMITS.organizationIdBytes);
    const families = knownFamilies(this.families, subject.provider, finding.modelFamilies);
    const state = finding.state ?? "";
    const reason = finding.state && finding.state !== "active" ? findingReason(finding.state, finding.reason) : "";
    const reply = (await this.run("kpFinding", [
      subject.keyHash,
      subject.secret,
      String(subject.adminStamp),
      families ? families.join(",") : "",
      finding.trial === undefined ? "" : finding.trial ? "1" : "0",
      bind ?? "",
      state,
      reason,
      ...clones.flatMap((organizationId) => [this.keyHasher(subject.provider, subject.secret, organizationId), organizationId]),
    ])) as string[];
    if (reply[0] === "applied") return { applied: true, clones: reply.slice(1) };
    return { applied: false, why: reply[1] as "removed" | "disabled" | "operator_changed" };
  }

  // ---------------------------------------------------------------- reading

  /** Keys matching the filter, sorted by keyHash, as of the moment of the call (any replica's changes included). */
  async listKeys(filter?: KeyFilter): Promise<KeyStatus[]> {
    await this.catchUp();
    return this.mirror.listKeys(filter);
  }

  /** ListKeys pages: the read model once it holds every change made before the call. */
  async keysAfter(after: string, filter?: KeyFilter): Promise<Generator<KeyStatus>> {
    await this.catchUp();
    return this.mirror.keysAfter(after, filter);
  }

  getKey(keyHash: string): KeyStatus | undefined {
    return this.mirror.getKey(keyHash);
  }

  countByProvider(): Partial<Record<ProviderId, number>> {
    return this.mirror.countByProvider();
  }

  /**
   * Ends due leases, then waits until the read model holds every change made before this call.
   * One script; the wait is bounded (Unavailable when this replica cannot follow the stream).
   */
  async catchUp(): Promise<void> {
    const number = await this.sync();
    if (number < this.mirror.applied) {
      // Redis lost the pool's changes (it restarted without them): what it holds now is the pool.
      this.follower?.restartFrom(await this.loadMirror());
      return;
    }
    await this.mirror.waitFor(number, this.catchUpTimeoutMs);
  }

  // ---------------------------------------------------------------- closing

  /** Stops following, rejects waiters with Unavailable, cancels timers. The `redis` client stays the caller's. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.waiters.close();
    this.expiryTimer?.cancel();
    this.expiryTimer = undefined;
    this.mirror.close();
    this.reader.disconnect();
    await this.follower?.close();
  }

  // ---------------------------------------------------------------- internals

  /**
   * A duplicate of the command client for the follower, bounded by the block plus a margin. Its
   * connection errors are the follower's to report (onHealth), not ioredis's unhandled events.
   */
  private followerConnection(redis: Redis): Redis {
    const reader = redis.duplicate({ commandTimeout: FOLLOW_BLOCK_MS + READ_MARGIN_MS, connectionName: "keypool-follower" });
    reader.on("error", () => {});
    return reader;
  }

  /** Runs a script by SHA (EVAL when Redis does not have it yet); Redis failures become Unavailable. */
  private async run(name: PoolScriptName, args: (string | number)[]): Promise<unknown> {
    const time = this.scriptTimeFromClock ? String(this.clock.now()) : "";
    const command = (this.redis as unknown as Record<string, (...a: (string | number)[]) => Promise<unknown>>)[name]!;
    try {
      return await command.call(this.redis, this.anchorKey, this.keyPrefix, time, this.maxLength, ...args);
    } catch (error) {
      throw this.unavailable(error);
    }
  }

  /**
   * A failure of Redis (unreachable, hung, loading, out of memory, failing over) becomes
   * Unavailable with its reason (redis-failure.ts); anything else is a bug (a script's runtime
   * error): logged here, it goes on as it is, and the transport answers INTERNAL.
   */
  private unavailable(error: unknown): unknown {
    if (error instanceof PoolError) return error;
    const unavailable = redisUnavailable(error);
    if (unavailable) return unavailable;
    this.logFailure("a pool script failed in Redis", error);
    return error;
  }

  /** Logs a Redis failure by its kind and message: replies and connection errors carry no secret. */
  private logFailure(message: string, error: unknown): void {
    const err = error as Error | undefined;
    this.logger?.warn({ errName: err?.name, err: err?.message?.slice(0, 200) }, message);
  }

  private checkOpen(): void {
    if (this.closed) throw new PoolError(ErrorCode.Unavailable, "the key pool is shutting down");
  }

  /** Ends due leases; returns the stream's last entry number. Plans this replica's next expiry run. */
  private async sync(): Promise<number> {
    const [number, more, untilNext] = (await this.run("kpSync", [])) as [string, number, number];
    if (more === 1) this.planExpiry(0);
    else if (untilNext >= 0) this.planExpiry(untilNext);
    return Number(number);
  }

  /**
   * One timer for the earliest lease deadline this replica knows of: when it fires, a script ends
   * the due leases (whichever replica runs it first; the others find nothing to do).
   */
  private planExpiry(delayMs: number): void {
    if (this.closed) return;
    const at = this.clock.now() + delayMs;
    if (at >= this.expiryAt) return;
    this.expiryTimer?.cancel();
    this.expiryAt = at;
    this.expiryTimer = this.clock.setTimer(delayMs, () => {
      this.expiryTimer = undefined;
      this.expiryAt = Infinity;
      this.sync().catch((error: unknown) => {
        this.logFailure("could not end expired leases in Redis; trying again", error);
        this.planExpiry(1000);
      });
    });
  }

  /** After the follower applied changes: waiters may find a key; new leases will expire. */
  private onApplied(events: readonly PoolEvent[]): void {
    if (this.closed) return;
    let leased = false;
    let wake = false;
    for (const event of events) {
      if (event.type === "updated" && event.cause === "leased") leased = true;
      else if (event.type === "removed" || !NEVER_FREES_A_KEY.has(event.cause)) wake = true;
    }
    if (leased) this.planExpiry(this.tunables.leaseTtlMs);
    if (wake) this.waiters.wake();
  }

  /**
   * Brings the pool's layout in Redis to this build's (docs/redis-layout.md, "Layout"): a pool
   * written before statuses were packed is converted a page per script, and a layout newer than
   * this build's stops the start, naming KEYPOOL_STATE.
   */
  private async ensureLayout(): Promise<void> {
    const layout = Number(await this.run("kpLayout", []));
    if (layout === POOL_LAYOUT) return;
    if (!(layout >= 1 && layout < POOL_LAYOUT)) {
      throw new StartupCheckError(
        REDIS_VARIABLE,
        `the pool ${this.keyPrefix.slice(0, -1)} in Redis has layout ${layout}, which this keypool (layout ${POOL_LAYOUT}) cannot read; run the keypool version that wrote it or a newer one`,
      );
    }
    this.logger?.info({ from: layout, to: POOL_LAYOUT }, "converting the pool in Redis to this build's layout");
    for (let after = ""; ; ) {
      const [count, last] = (await this.run("kpConvert", [after, SNAPSHOT_PAGE])) as [number, string];
      if (count < SNAPSHOT_PAGE) break;
      after = last;
    }
  }

  /** The configured keys checked as AddKeys checks them, each hash once (the first one configured). */
  private checkConfigured(specs: readonly KeySpec[]): { list: ConfiguredSpec[]; byHash: Map<string, ConfiguredSpec> } {
    const byHash = new Map<string, ConfiguredSpec>();
    const list: ConfiguredSpec[] = [];
    specs.forEach((spec, i) => {
      const c = checkSpec(spec, i, this.families, this.keyHasher) as ConfiguredSpec;
      if (!byHash.has(c.keyHash)) {
        // checkSpec's answer is this call's own: marked in place, not copied (a large file's keys).
        c.trialStated = spec.trial !== undefined;
        c.unchanged = false;
        byHash.set(c.keyHash, c);
        list.push(c);
      }
    });
    return { list, byHash };
  }

  /**
   * Merges the configured keys into the pool. A key the snapshot held unchanged by its
   * configuration (`unchanged`, marked by loadMirror) needs no script; the others go to Redis, a
   * batch per script, each batch adding only keys still missing and reporting a collision.
   */
  private async mergeConfigured(checked: readonly ConfiguredSpec[]): Promise<void> {
    // Indices into `checked` of the keys Redis must see: a collision names the key's place.
    const send: number[] = [];
    checked.forEach((c, i) => {
      if (!c.unchanged) send.push(i);
    });
    let added = 0;
    let skipped = 0;
    // A few batches are in flight at once: Redis runs one while the next is encoded and sent.
    // Each batch is its own atomic script, so their order does not matter; the first collision
    // in configuration order is the one reported.
    const starts: number[] = [];
    for (let i = 0; i < send.length; i += BATCH) starts.push(i);
    const replies: Reply[] = new Array(starts.length);
    let nextBatch = 0;
    let collided = false;
    const worker = async () => {
      while (nextBatch < starts.length && !collided) {
        const b = nextBatch++;
        const i = starts[b]!;
        const reply = (await this.run("kpAdd", ["merge", packSpecs(send.slice(i, i + BATCH).map((j) => checked[j]!))])) as Reply;
        replies[b] = reply;
        if (reply[0] === "collision") collided = true;
      }
    };
    const settled = await Promise.allSettled(Array.from({ length: Math.min(MERGE_IN_FLIGHT, starts.length) }, worker));
    for (const s of settled) if (s.status === "rejected") throw s.reason;
    replies.forEach((reply, b) => {
      // Batches after a collision may be unsent (holes in the array): the start fails anyway.
      if (reply[0] === "collision") {
        const j = send[starts[b]! + Number(reply[1])]!;
        throw hashCollision(j, checked[j]!.keyHash);
      }
      added += Number(reply[1]);
      skipped += Number(reply[3]);
    });
    this.logger?.info(
      { configured: checked.length, unchanged: checked.length - send.length, added, removedByOperator: skipped },
      "configured keys merged into the pool in Redis",
    );
  }

  /**
   * Loads every key into the read model, a page per script; returns where to follow the stream
   * from. The next page is asked for before this one is decoded, so that Redis reads a page while
   * this process decodes the one before: at most two pages are in memory as text at once. The
   * pages come in key_hash order, the model's own. A configured key (`configured`, by hash) that a
   * page holds under its fingerprint and provider, and that its configuration would not change,
   * is marked unchanged: the merge need not send it.
   */
  private async loadMirror(configured?: ReadonlyMap<string, ConfiguredSpec>): Promise<StreamPosition> {
    const statuses: KeyStatus[] = [];
    const page = (after: string) => this.run("kpSnapshot", [after, SNAPSHOT_PAGE]) as Promise<Reply>;
    let reply = await page("");
    // The first page's instant is where the stream is followed from: every change after it is
    // applied on top of the pages, so a page read later is never undone for good.
    const position: StreamPosition = { id: String(reply[0]), number: Number(reply[1]) };
    for (;;) {
      const next = Number(reply[2]) < SNAPSHOT_PAGE ? undefined : page(String(reply[3]));
      // A failed page is awaited below; until then its rejection must not count as unhandled.
      next?.catch(() => {});
      for (const packed of JSON.parse(String(reply[4])) as PackedStatus[]) {
        statuses.push(statusFromPacked(packed));
        const c = configured?.get(packed[0]);
        if (c && mergeKeeps(packed, c)) c.unchanged = true;
      }
      if (!next) break;
      reply = await next;
    }
    this.mirror.replaceAll(statuses, position.number);
    return position;
  }
}

/**
 * Whether a key as the snapshot holds it is the configured key, the merge at start changing
 * nothing on it (pool-scripts.ts, ADD "merge"): the same provider and secret (its fingerprint),
 * the configuration's families already the key's when it names them, its trial flag when it
 * states one. Anything else goes to the script, which decides (a collision included).
 */
function mergeKeeps(packed: PackedStatus, c: ConfiguredSpec): boolean {
  if (packed[1] !== c.provider) return false;
  const pinned = packed[15] === 1;
  if (c.familiesPinned !== pinned) return false;
  if (pinned && c.modelFamilies.join(",") !== packed[2]) return false;
  if (c.trialStated && c.trial !== (packed[4] === 1)) return false;
  return packed[FINGERPRINT] === secretFingerprint(c.key);
}

/**
 * A configured key, checked; whether its spec states the trial flag (else the pool's is kept);
 * and whether the snapshot showed the merge has nothing to do for it.
 */
type ConfiguredSpec = CheckedSpec & { trialStated: boolean; unchanged: boolean };

/** The keys as ADD takes them (pool-scripts.ts): one JSON text, a list of 8 strings per key. */
function packSpecs(specs: readonly (CheckedSpec & { trialStated?: boolean })[]): string {
  return JSON.stringify(
    specs.map((c) => [
      c.keyHash,
      c.provider,
      c.key,
      c.modelFamilies.join(","),
      c.organizationId,
      c.trial ? "1" : "0",
      c.familiesPinned ? "1" : "0",
      c.trialStated ? "1" : "0",
    ]),
  );
}
