/**
 * The key checker's schedule (docs/checker.md, "When it runs"): keys never checked first, a few
 * at a time; then, with recurring checks on, the least recently checked ACTIVE key once its
 * period has passed, one at a time, at least an interval (plus jitter) apart; keys whose check
 * proved nothing are tried again later. It follows the pool's change feed, so that keys added,
 * cloned, enabled or marked by RecheckKeys are seen at once, and writes findings only through
 * the pool. Time comes from the injected clock; what a check does is injected too (upstream-check.ts).
 */
import type { Clock, Timer } from "../domain/clock";
import { IndexedHeap, type HeapNode } from "../domain/indexed-heap";
import type { CheckSubject, FindingResult } from "../domain/key-check";
import type { CheckedPool } from "../domain/pool-api";
import type { ChangeCause, KeyStatus, PoolEvent, ProviderId } from "../domain/types";
import { RETRY_AFTER_FAILURE_MS, type CheckOutcome } from "./upstream-answer";
import type { CheckKey } from "./upstream-check";

/** pino's Logger fits. */
export interface CheckerLogger {
  info(fields: object, message: string): void;
  warn(fields: object, message: string): void;
  debug(fields: object, message: string): void;
}

export interface KeyCheckerOptions {
  pool: CheckedPool;
  clock: Clock;
  check: CheckKey;
  /** The providers `check` knows how to check; keys of any other provider are never checked. */
  checks: ReadonlySet<ProviderId>;
  logger: CheckerLogger;
  /** KEYPOOL_CHECK_CONCURRENCY: keys checked at once (>= 1). */
  concurrency: number;
  /** KEYPOOL_CHECK_PERIOD: a checked ACTIVE key is checked again after this long; 0: never. */
  periodMs: number;
  /** KEYPOOL_CHECK_INTERVAL: least time between two recurring checks. */
  intervalMs: number;
  /** In [0, 1): the jitter added to each interval. Default Math.random. */
  random?: () => number;
}

/** Each recurring gap is the interval plus up to this share of it, at random. */
export const JITTER_SHARE = 0.5;

/** Changes that can make a key due, not due, or due at another time. Leases and reports cannot. */
const SCHEDULE_CAUSES: ReadonlySet<ChangeCause> = new Set<ChangeCause>([
  "added",
  "restored",
  "checked",
  "check_requested",
  "disabled",
  "enabled",
  "revoked",
  "over_quota",
]);

/** A checked ACTIVE key waiting for its recurring check, by last_checked. */
interface RecurringNode extends HeapNode {
  readonly keyHash: string;
}

export interface CheckerStats {
  /** Checks completed (findings applied or dropped). */
  checked: number;
  /** Checks that proved nothing and were scheduled again. */
  retried: number;
  /** Findings the pool dropped (the operator decided meanwhile). */
  dropped: number;
  /** Most checks in flight at once. */
  maxInFlight: number;
}

export class KeyChecker {
  /** Never checked (or marked by RecheckKeys), in arrival order. */
  private readonly firstChecks = new Set<string>();
  private readonly recurring = new IndexedHeap<RecurringNode>();
  private readonly recurringNodes = new Map<string, RecurringNode>();
  /** Keys whose check proved nothing, until they are tried again. */
  private readonly retries = new Map<string, Timer>();
  private readonly inFlight = new Map<string, AbortController>();
  /** Keys in flight that RecheckKeys marked meanwhile. */
  private readonly recheckAfter = new Set<string>();
  private nextRecurringAt = 0;
  private wakeTimer: Timer | undefined;
  private wakeAt = Infinity;
  private unsubscribe: (() => void) | undefined;
  private closed = false;
  private readonly random: () => number;
  readonly stats: CheckerStats = { checked: 0, retried: 0, dropped: 0, maxInFlight: 0 };

  constructor(private readonly options: KeyCheckerOptions) {
    if (!(options.concurrency >= 1)) throw new RangeError("check concurrency must be at least 1");
    this.random = options.random ?? Math.random;
  }

  /** Reads the pool once, then follows its changes; checks begin on the next turn of the clock. */
  start(): void {
    if (this.unsubscribe || this.closed) return;
    this.unsubscribe = this.options.pool.changes.subscribe(this.onChange);
    for (const status of this.options.pool.listKeys()) this.place(status.keyHash, status);
    this.wake(0);
  }

  /** Cancels every check in flight and every timer; findings still arriving are not applied. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.unsubscribe?.();
    for (const controller of this.inFlight.values()) controller.abort();
    for (const timer of this.retries.values()) timer.cancel();
    this.retries.clear();
    this.wakeTimer?.cancel();
    this.wakeTimer = undefined;
  }

  /** Keys waiting for a first check. */
  get pendingFirstChecks(): number {
    return this.firstChecks.size;
  }

  get checksInFlight(): number {
    return this.inFlight.size;
  }

  private readonly onChange = (event: PoolEvent): void => {
    if (event.type === "removed") {
      this.forget(event.keyHash);
      return;
    }
    if (!SCHEDULE_CAUSES.has(event.cause)) return;
    const key = event.key;
    const keyHash = key.keyHash;
    // A check in flight settles the key's place when it completes; a recheck asked for meanwhile
    // runs after it (the check in flight started before the request).
    if (this.inFlight.has(keyHash)) {
      if (event.cause === "check_requested") this.recheckAfter.add(keyHash);
      return;
    }
    if (event.cause === "check_requested" || key.state === "disabled") this.cancelRetry(keyHash);
    this.place(keyHash, key);
    this.wake(0);
  };

  /** Files a key under what it waits for, from its status (or the change's view of the key). */
  private place(keyHash: string, status: Pick<KeyStatus, "state" | "provider" | "lastChecked">): void {
    this.firstChecks.delete(keyHash);
    this.removeRecurring(keyHash);
    if (status.state === "disabled" || this.retries.has(keyHash)) return;
    if (!this.options.checks.has(status.provider)) return;
    if (status.lastChecked === 0) {
      this.firstChecks.add(keyHash);
    } else if (status.state === "active") {
      const node: RecurringNode = { keyHash, heapPos: -1 };
      this.recurringNodes.set(keyHash, node);
      this.recurring.push(node, status.lastChecked);
    }
  }

  private removeRecurring(keyHash: string): void {
    const node = this.recurringNodes.get(keyHash);
    if (!node) return;
    this.recurring.remove(node);
    this.recurringNodes.delete(keyHash);
  }

  private cancelRetry(keyHash: string): void {
    this.retries.get(keyHash)?.cancel();
    this.retries.delete(keyHash);
  }

  private forget(keyHash: string): void {
    this.recheckAfter.delete(keyHash);
    this.firstChecks.delete(keyHash);
    this.removeRecurring(keyHash);
    this.cancelRetry(keyHash);
  }

  /** Runs pump after `delayMs` (one timer: the earliest asked for). */
  private wake(delayMs: number): void {
    if (this.closed) return;
    const at = this.options.clock.now() + Math.max(0, delayMs);
    if (at >= this.wakeAt) return;
    this.wakeTimer?.cancel();
    this.wakeAt = at;
    this.wakeTimer = this.options.clock.setTimer(delayMs, () => {
      this.wakeTimer = undefined;
      this.wakeAt = Infinity;
      this.pump();
    });
  }

  /** Starts what is due while there is room; plans the next wake-up for a recurring check. */
  private pump(): void {
    if (this.closed) return;
    const { concurrency, periodMs, intervalMs } = this.options;
    while (this.inFlight.size < concurrency && this.firstChecks.size > 0) {
      const keyHash = this.firstChecks.values().next().value as string;
      this.firstChecks.delete(keyHash);
      this.begin(keyHash);
    }
    if (periodMs <= 0 || this.firstChecks.size > 0) return;
    while (this.inFlight.size < concurrency && this.recurring.size > 0) {
      const now = this.options.clock.now();
      const dueAt = Math.max(this.recurring.peekPriority() + periodMs, this.nextRecurringAt);
      if (dueAt > now) {
        this.wake(dueAt - now);
        return;
      }
      const node = this.recurring.pop()!;
      this.recurringNodes.delete(node.keyHash);
      this.nextRecurringAt = now + intervalMs + Math.floor(intervalMs * JITTER_SHARE * this.random());
      this.begin(node.keyHash);
    }
  }

  private begin(keyHash: string): void {
    const found = this.options.pool.checkSubject(keyHash);
    if (found instanceof Promise) {
      // A pool kept in Redis answers later: the key holds its place among the checks in flight
      // meanwhile, so that concurrency stays bounded.
      const controller = new AbortController();
      this.inFlight.set(keyHash, controller);
      found.then(
        (subject) => {
          if (this.inFlight.get(keyHash) !== controller) return;
          if (subject && !this.closed) return this.launch(subject, controller);
          this.inFlight.delete(keyHash);
          this.pump();
        },
        (err: unknown) => {
          if (this.inFlight.get(keyHash) !== controller) return;
          this.inFlight.delete(keyHash);
          this.options.logger.warn({ keyHash, err: err instanceof Error ? err.message : String(err) }, "key check could not start: the pool did not answer");
          if (!this.closed) this.retryLater(keyHash, RETRY_AFTER_FAILURE_MS);
        },
      );
      return;
    }
    if (found) this.launch(found, new AbortController());
  }

  private launch(subject: CheckSubject, controller: AbortController): void {
    this.inFlight.set(subject.keyHash, controller);
    this.stats.maxInFlight = Math.max(this.stats.maxInFlight, this.inFlight.size);
    let outcome: Promise<CheckOutcome>;
    try {
      outcome = this.options.check(subject, controller.signal);
    } catch (err) {
      outcome = Promise.reject(err);
    }
    outcome.then(
      (result) => this.complete(subject, result),
      (err: unknown) =>
        this.complete(subject, {
          kind: "retry",
          afterMs: RETRY_AFTER_FAILURE_MS,
          why: `the check failed: ${err instanceof Error ? err.name : "error"}`,
        }),
    );
  }

  private async complete(subject: CheckSubject, outcome: CheckOutcome): Promise<void> {
    const { keyHash } = subject;
    this.inFlight.delete(keyHash);
    if (this.closed) return;
    const recheck = this.recheckAfter.delete(keyHash);
    const log = this.options.logger;
    if (outcome.kind === "retry") {
      this.stats.retried++;
      log.info({ keyHash, why: outcome.why, retryInMs: outcome.afterMs }, "key check proved nothing; trying again later");
      this.retryLater(keyHash, outcome.afterMs);
    } else {
      this.stats.checked++;
      for (const w of outcome.warnings) {
        log.warn({ keyHash, request: w.request, status: w.status, errorType: w.errorType }, "key check: unexpected upstream answer");
      }
      let result: FindingResult | undefined;
      try {
        result = await this.options.pool.applyFinding(subject, outcome.finding);
      } catch (err) {
        // A finding the pool refuses (an organization id past its limit) changes nothing; the
        // key is tried again later rather than at once.
        log.warn({ keyHash, err: err instanceof Error ? err.message : String(err) }, "key check finding refused by the pool");
        this.retryLater(keyHash, RETRY_AFTER_FAILURE_MS);
      }
      if (result?.applied) {
        const f = outcome.finding;
        // First checks and bad news at info; a recurring check that found the key well, at debug.
        const level = subject.firstCheck || (f.state !== undefined && f.state !== "active") || result.clones.length > 0 ? "info" : "debug";
        log[level](
          {
            keyHash,
            ...(f.state ? { state: f.state } : {}),
            ...(f.reason ? { reason: f.reason } : {}),
            ...(f.modelFamilies ? { modelFamilies: f.modelFamilies } : {}),
            ...(f.trial !== undefined ? { trial: f.trial } : {}),
            ...(f.organizationId ? { organizationId: f.organizationId } : {}),
            ...(result.clones.length > 0 ? { clones: result.clones } : {}),
          },
          "key checked",
        );
      } else if (result) {
        this.stats.dropped++;
        log.info({ keyHash, why: result.why }, "key check finding dropped: the key changed meanwhile");
      }
      // Events about the key were passed over while it was in flight: file it by its status now
      // (an applied finding's own "checked" event has done so already).
      if (result && !result.applied) {
        const status = this.options.pool.getKey(keyHash);
        if (status) this.place(keyHash, status);
      }
    }
    if (recheck) {
      this.cancelRetry(keyHash);
      const status = this.options.pool.getKey(keyHash);
      // Marking a checked key publishes check_requested, which files it; an unchecked one is filed here.
      if (status && status.lastChecked !== 0) {
        void Promise.resolve(this.options.pool.markForCheck([keyHash])).catch((err: unknown) =>
          log.warn({ keyHash, err: err instanceof Error ? err.message : String(err) }, "key recheck could not be marked: the pool did not answer"),
        );
      }
      else if (status) this.place(keyHash, status);
    }
    this.pump();
  }

  /** Leaves the key unchecked until `afterMs` from now, then puts it first in line. */
  private retryLater(keyHash: string, afterMs: number): void {
    this.cancelRetry(keyHash);
    this.retries.set(
      keyHash,
      this.options.clock.setTimer(afterMs, () => {
        this.retries.delete(keyHash);
        // Gone or DISABLED: nothing to check (checkSubject's rule, read from the status).
        const status = this.options.pool.getKey(keyHash);
        if (!status || status.state === "disabled") return;
        this.firstChecks.add(keyHash);
        this.pump();
      }),
    );
  }
}
