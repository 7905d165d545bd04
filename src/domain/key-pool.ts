import { ChangeFeed } from "./change-feed";
import { MAX_TIMER_DELAY_MS, type Clock } from "./clock";
import { ErrorCode, PoolError } from "./errors";
import { everyKeyBusy, familyQueueFull, noKeyServes, waitersFull } from "./lease-errors";
import { KeyAdministration } from "./key-administration";
import { KeyChanges } from "./key-changes";
import type { CheckSubject, FindingResult, KeyFinding } from "./key-check";
import { KeyChecks } from "./key-checks";
import { keyMatches, type KeyFilter } from "./key-filter";
import { readyAtOf, toStatus, type KeyEntry } from "./key-entry";
import { hashKey } from "./key-hash";
import { KeyTable } from "./key-table";
import { EntryView } from "./key-view";
import { LeaseBook } from "./leases";
import { FamilyTable } from "./model-families";
import { ModelResolver } from "./model-resolver";
import { resolvePoolOptions, type PoolOptions } from "./pool-options";
import { ReportHandling, type RateLimitReport, type UsageReport } from "./report-handling";
import type { DisableState, KeyRecord, KeySoftState, KeySpec, KeyStatus, KeyView, Lease, PoolEvent, ProviderId } from "./types";
import { WaiterScheduler } from "./waiter-scheduler";
import type { WaitTarget } from "./waiters";

export type { PoolOptions };

export interface LeaseRequest {
  model: string;
  provider?: ProviderId;
}

/**
 * The key pool: keys, their state, and the choice of a key for each request
 * (docs/selection-and-leases.md). Pure domain: no I/O, time only from the injected clock. Every
 * change to a key publishes exactly one event on `changes` (key-changes.ts); a call that throws
 * changes nothing. This class chooses and leases keys and hands the rest to its parts:
 * administration (key-administration.ts), reports (report-handling.ts), waiting leases
 * (waiter-scheduler.ts) and model names (model-resolver.ts).
 */
export class KeyPool {
  readonly changes = new ChangeFeed<PoolEvent>();

  private readonly clock: Clock;
  private readonly reuseDelayMs: number;
  private readonly leaseTtlMs: number;
  private readonly maxWaitersPerFamily: number;
  private readonly maxWaiters: number;

  private readonly keys = new KeyTable();
  private readonly models: ModelResolver;
  private readonly leases: LeaseBook<KeyEntry>;
  private readonly keyChanges: KeyChanges;
  private readonly scheduler: WaiterScheduler;
  private readonly admin: KeyAdministration;
  private readonly reports: ReportHandling;
  private readonly checks: KeyChecks;
  private closed = false;

  constructor(options: PoolOptions) {
    const o = resolvePoolOptions(options);
    this.clock = options.clock;
    this.reuseDelayMs = o.reuseDelayMs;
    this.leaseTtlMs = o.leaseTtlMs;
    this.maxWaitersPerFamily = o.maxWaitersPerFamily;
    this.maxWaiters = o.maxWaiters;
    const families = options.families ?? FamilyTable.builtIn();
    this.models = new ModelResolver(families, options.allowedFamilies ?? null);
    this.leases = new LeaseBook(this.clock, (entry) => this.onLeaseExpired(entry));
    this.scheduler = new WaiterScheduler(this.clock, this.keys.index, {
      grant: (entry, target, now) => this.grant(entry, target, now),
      noKeys: (target) => this.noKeysError(target),
      busy: (target, now) => this.busyError(target, now),
    });
    const serveWaiters = () => this.scheduler.serveAll();
    this.keyChanges = new KeyChanges(this.keys, this.changes, this.clock, serveWaiters);
    this.admin = new KeyAdministration(this.clock, this.keys, this.keyChanges, families, options.keyHasher ?? hashKey, serveWaiters);
    this.checks = new KeyChecks(this.clock, this.keys, this.keyChanges, families, options.keyHasher ?? hashKey, serveWaiters);
    this.reports = new ReportHandling(this.clock, this.keys, this.keyChanges, this.leases, this.models, {
      maxResetMs: o.maxResetMs,
      defaultCooldownMs: o.defaultCooldownMs,
      maxCooldownMs: o.maxCooldownMs,
    });
  }

  /** Keys in the pool. */
  get size(): number {
    return this.keys.size;
  }

  /** Lease calls waiting for a key, over all families. */
  get waitingLeases(): number {
    return this.scheduler.queues.size;
  }

  // ---------------------------------------------------------------- administration

  addKeys(specs: KeySpec[]): { keyHashes: string[]; added: number; duplicates: number } {
    return this.admin.addKeys(specs);
  }

  removeKey(keyHash: string): void {
    this.admin.removeKey(keyHash);
  }

  disableKey(keyHash: string, state: DisableState = "disabled", reason?: string): KeyStatus {
    return this.admin.disableKey(keyHash, state, reason);
  }

  enableKey(keyHash: string): KeyStatus {
    return this.admin.enableKey(keyHash);
  }

  restore(records: KeyRecord[]): void {
    this.admin.restore(records);
  }

  // ---------------------------------------------------------------- checks (key-checks.ts)

  /** What the key checker needs to check a key; undefined when it is gone or DISABLED. */
  checkSubject(keyHash: string): CheckSubject | undefined {
    return this.checks.subject(keyHash);
  }

  /** Applies a completed check (with its clones) as pool changes, or drops it. */
  applyFinding(subject: CheckSubject, finding: KeyFinding): FindingResult {
    return this.checks.apply(subject, finding);
  }

  /** RecheckKeys: marks keys (all when none is named) for the checker; returns how many. */
  markForCheck(keyHashes?: readonly string[]): number {
    return this.checks.markForCheck(keyHashes);
  }

  // ---------------------------------------------------------------- leasing

  /** A ready key now, or PoolError (see checkTarget; ResourceExhausted carries retryAfterMs). */
  lease(req: LeaseRequest): Lease {
    this.checkOpen();
    const target = this.checkTarget(req);
    const now = this.clock.now();
    // Waiters queued earlier for this family come first.
    if (this.scheduler.queues.size > 0) this.scheduler.serve(this.scheduler.queues.queueFor(target), now);
    const entry = this.keys.index.pick(target.provider, target.family, target.embedding, now);
    if (!entry) throw this.busyError(target, now);
    return this.grant(entry, target, now);
  }

  /** Like lease, but waits up to maxWaitMs for a key (FIFO per family), or until signal aborts. */
  leaseWhenReady(req: LeaseRequest & { maxWaitMs: number; signal?: AbortSignal }): Promise<Lease> {
    try {
      this.checkOpen();
      const target = this.checkTarget(req);
      const now = this.clock.now();
      const queues = this.scheduler.queues;
      this.scheduler.serve(queues.queueFor(target), now);
      if (queues.lengthOf(target) === 0) {
        const entry = this.keys.index.pick(target.provider, target.family, target.embedding, now);
        if (entry) return Promise.resolve(this.grant(entry, target, now));
      }
      if (req.signal?.aborted) throw new PoolError(ErrorCode.Cancelled, "the lease request was cancelled");
      // A wait past what a timer can express (24.8 days) is capped there.
      const maxWaitMs = Math.min(Number.isFinite(req.maxWaitMs) ? req.maxWaitMs : 0, MAX_TIMER_DELAY_MS);
      if (maxWaitMs <= 0) throw this.busyError(target, now);
      if (queues.lengthOf(target) >= this.maxWaitersPerFamily) {
        const { lockoutMs } = this.keys.index.lockout(target.provider, target.family, target.embedding, now);
        throw familyQueueFull(this.maxWaitersPerFamily, target, lockoutMs);
      }
      if (queues.size >= this.maxWaiters) {
        const { lockoutMs } = this.keys.index.lockout(target.provider, target.family, target.embedding, now);
        throw waitersFull(this.maxWaiters, lockoutMs);
      }
      return this.scheduler.wait(target, maxWaitMs, req.signal);
    } catch (error) {
      return Promise.reject(error);
    }
  }

  /** How long until a key for this model is ready (0: now); noActiveKeys when none serves it. */
  lockout(req: LeaseRequest): { lockoutMs: number; noActiveKeys: boolean } {
    const target = this.checkTarget(req, false);
    return this.keys.index.lockout(target.provider, target.family, target.embedding, this.clock.now());
  }

  /** Model → provider and family, or InvalidArgument naming the model. */
  resolveModel(model: string, provider?: ProviderId): { provider: ProviderId; family: string } {
    const { provider: p, family } = this.models.resolve(model, provider);
    return { provider: p, family };
  }

  /**
   * Validates a request in the documented order (docs/selection-and-leases.md, "What Lease
   * answers"): model (InvalidArgument),
   * allowed family (PermissionDenied), then an ACTIVE eligible key (FailedPrecondition) when
   * `needKeys`.
   */
  private checkTarget(req: LeaseRequest, needKeys = true): WaitTarget {
    const target = this.models.resolveAllowed(req?.model, req?.provider);
    if (needKeys && !this.keys.index.hasEligible(target.provider, target.family, target.embedding)) {
      throw this.noKeysError(target);
    }
    return target;
  }

  private noKeysError(target: WaitTarget): PoolError {
    return noKeyServes(target);
  }

  private busyError(target: WaitTarget, now: number): PoolError {
    const { lockoutMs } = this.keys.index.lockout(target.provider, target.family, target.embedding, now);
    return everyKeyBusy(target, lockoutMs);
  }

  private grant(entry: KeyEntry, target: WaitTarget, now: number): Lease {
    const expiresAt = now + this.leaseTtlMs;
    const lease = this.leases.open(entry, expiresAt);
    entry.lastUsed = now;
    entry.leaseCount++;
    entry.inFlight++;
    entry.holdUntil = now + this.reuseDelayMs;
    entry.readyAt = readyAtOf(entry);
    this.keyChanges.commit(entry, "leased", "reposition", false, now);
    return {
      key: entry.secret,
      keyHash: entry.keyHash,
      provider: entry.provider,
      modelFamily: target.family,
      organizationId: entry.organizationId,
      leaseId: this.leases.idOf(lease),
      leaseExpiresAt: expiresAt,
    };
  }

  private onLeaseExpired(entry: KeyEntry): void {
    if (this.keys.byHash.get(entry.keyHash) !== entry) return; // removed or replaced since
    entry.inFlight--;
    this.keyChanges.commit(entry, "lease_ended", "none", false);
  }

  // ---------------------------------------------------------------- reports and usage

  /** Applies an upstream response's status and headers (docs/reports-and-lockout.md). */
  reportRateLimit(r: RateLimitReport): { readyAt: number } {
    return this.reports.reportRateLimit(r);
  }

  /** Counts a prompt's tokens for the model's family; ends the named lease if it is open. */
  incrementUsage(u: UsageReport): void {
    this.reports.incrementUsage(u);
  }

  // ---------------------------------------------------------------- reading

  /** Keys matching the filter (provider; any of the families), sorted by keyHash. */
  listKeys(filter?: KeyFilter): KeyStatus[] {
    const out: KeyStatus[] = [];
    for (const entry of this.keys.byHash.values()) if (!filter || keyMatches(filter, entry)) out.push(toStatus(entry));
    return out.sort((a, b) => (a.keyHash < b.keyHash ? -1 : a.keyHash > b.keyHash ? 1 : 0));
  }

  /**
   * The keys matching the filter whose hash comes after `after` ("": from the first), in
   * key_hash order, each status made as it is pulled: a page takes what it needs and stops.
   */
  *keysAfter(after: string, filter?: KeyFilter): Generator<KeyStatus> {
    for (const keyHash of this.keys.order.from(after)) {
      const entry = this.keys.byHash.get(keyHash);
      if (entry && (!filter || keyMatches(filter, entry))) yield toStatus(entry);
    }
  }

  /**
   * Every key, as a view (key-view.ts), in no particular order: what a follower of the change
   * feed starts from without copying each key's status.
   */
  *viewKeys(): Generator<KeyView> {
    for (const entry of this.keys.byHash.values()) yield new EntryView(entry);
  }

  /** How many keys each provider has in the pool (providers without keys are absent). No copies. */
  countByProvider(): Partial<Record<ProviderId, number>> {
    const counts: Partial<Record<ProviderId, number>> = {};
    for (const entry of this.keys.byHash.values()) counts[entry.provider] = (counts[entry.provider] ?? 0) + 1;
    return counts;
  }

  getKey(keyHash: string): KeyStatus | undefined {
    const entry = this.keys.byHash.get(keyHash);
    return entry && toStatus(entry);
  }

  /** What a lease changed in the key, for durable storage: three numbers, no status made. */
  softStateOf(keyHash: string): KeySoftState | undefined {
    const entry = this.keys.byHash.get(keyHash);
    return entry && { lastUsed: entry.lastUsed, leaseCount: entry.leaseCount, holdUntil: entry.holdUntil };
  }

  /** The secret, for durable storage only. */
  secretOf(keyHash: string): string | undefined {
    return this.keys.byHash.get(keyHash)?.secret;
  }

  /** Cancels every timer and rejects every waiter with Unavailable. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.leases.close();
    this.scheduler.close();
    this.scheduler.queues.rejectAll(() => new PoolError(ErrorCode.Unavailable, "the key pool is shutting down"));
  }

  private checkOpen(): void {
    if (this.closed) throw new PoolError(ErrorCode.Unavailable, "the key pool is shutting down");
  }
}
