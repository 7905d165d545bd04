import type { WatchedPool } from "../domain/pool-api";
import type { Clock } from "../domain/clock";
import { ErrorCode, PoolError } from "../domain/errors";
import type { KeyStatus, PoolEvent, ProviderId } from "../domain/types";
import { keyMatches, type KeyAttributes, type KeyFilter } from "../domain/key-filter";
import { filterBuckets, keyBuckets, sameAttributes } from "./watch-filter";
import { WatchSubscription } from "./watch-subscription";


export interface WatchHubOptions {
  clock: Clock;
  /** KEYPOOL_WATCH_COALESCE: changes to one key within this window reach a subscriber as one. */
  coalesceMs?: number;
  /** KEYPOOL_WATCH_HEARTBEAT: a heartbeat goes out after this long without a message. */
  heartbeatMs?: number;
  /** At most this many open watches; past it, subscribe throws RESOURCE_EXHAUSTED. */
  maxSubscribers?: number;
  /**
   * Runs the waking of watches after the pool's turn (default setImmediate): the call that made a
   * change is answered first, and the changes of one turn reach each watch in one go.
   */
  defer?: (callback: () => void) => void;
  /**
   * Whether the server is too busy for leading-edge delivery (default: the event loop was busy
   * at least 90% of the last 100 ms). When it is, a key's first change waits for the end of the
   * window it opens, like the changes that follow it: one message per key per window instead of
   * up to two, and the fan-out does not take the time of the calls that make the changes.
   */
  saturated?: () => boolean;
}

export const DEFAULT_WATCH_COALESCE_MS = 100;
export const DEFAULT_WATCH_HEARTBEAT_MS = 15_000;
/** Watches woken per turn when a change reaches many at once. */
const WAKE_BATCH = 50;

/**
 * Fans the pool's change feed out to any number of watches. It listens to the pool once; a change
 * to a key costs one Map set per watch whose filter can match the key (watches are indexed by
 * provider and family), never a message: messages are made when a watch's consumer pulls.
 */
export class WatchHub {
  private readonly clock: Clock;
  private readonly coalesceMs: number;
  private readonly heartbeatMs: number;
  private readonly maxSubscribers: number;
  private readonly buckets = new Map<string, Set<WatchSubscription>>();
  private readonly subscriptions = new Set<WatchSubscription>();
  /** Each key's provider and families as last seen, to tell who must hear that it left a filter. */
  private readonly keys = new Map<string, KeyAttributes>();
  private readonly abortCleanups = new Map<WatchSubscription, () => void>();
  private unsubscribeFeed: (() => void) | null;
  private stamp = 0;
  private closedWith: PoolError | null = null;
  private readonly defer: (callback: () => void) => void;
  private readonly saturated: () => boolean;
  /** Whether the change being fanned out may go out at once (decided once per change). */
  private leading = true;
  private readonly leadingEdge = () => this.leading;
  /** Watches with a change due and a consumer waiting, to wake once the pool's turn is over. */
  private readonly toWake = new Set<WatchSubscription>();
  private readonly wakeSoon = (subscription: WatchSubscription) => {
    if (this.toWake.size === 0) this.defer(this.wakeAll);
    this.toWake.add(subscription);
  };
  /**
   * Wakes the waiting watches, a batch per turn: node:http2 sends what the streams wrote only
   * once the turn is over, so waking 1,000 watches in one turn would make the first wait for the
   * last; batches let each one's messages leave while the next are made, and calls in between.
   */
  private readonly wakeAll = () => {
    let n = 0;
    for (const subscription of this.toWake) {
      if (n++ === WAKE_BATCH) {
        this.defer(this.wakeAll);
        return;
      }
      this.toWake.delete(subscription);
      subscription.wake();
    }
  };

  constructor(
    private readonly pool: WatchedPool,
    options: WatchHubOptions,
  ) {
    this.clock = options.clock;
    this.coalesceMs = nonNegative("coalesceMs", options.coalesceMs ?? DEFAULT_WATCH_COALESCE_MS);
    this.heartbeatMs = positive("heartbeatMs", options.heartbeatMs ?? DEFAULT_WATCH_HEARTBEAT_MS);
    this.maxSubscribers = positive("maxSubscribers", options.maxSubscribers ?? Infinity);
    this.defer = options.defer ?? ((callback) => void setImmediate(callback));
    this.saturated = options.saturated ?? eventLoopSaturated(0.9, 100);
    for (const status of pool.listKeys()) this.keys.set(status.keyHash, attributesOf(status));
    this.unsubscribeFeed = pool.changes.subscribe((event) => this.onChange(event));
  }

  /**
   * Opens a watch: its first message is a snapshot of every matching key, as of now. The watch
   * ends when `signal` aborts (dropped at once, with everything it held), when its consumer calls
   * return(), or when the hub closes (the consumer then gets UNAVAILABLE).
   */
  subscribe(filter: KeyFilter = {}, signal?: AbortSignal): WatchSubscription {
    if (this.closedWith) throw this.closedWith;
    if (this.subscriptions.size >= this.maxSubscribers) {
      throw new PoolError(
        ErrorCode.ResourceExhausted,
        `too many WatchKeys streams are open (the limit is ${this.maxSubscribers}, set by KEYPOOL_MAX_WATCHERS); retry later`,
      );
    }
    const normalized: KeyFilter = {
      provider: filter.provider,
      modelFamilies: filter.modelFamilies && filter.modelFamilies.length > 0 ? [...filter.modelFamilies] : undefined,
    };
    const snapshot = this.pool.listKeys({
      provider: normalized.provider,
      modelFamilies: normalized.modelFamilies ? [...normalized.modelFamilies] : undefined,
    });
    const subscription = new WatchSubscription(
      normalized,
      snapshot,
      { clock: this.clock, coalesceMs: this.coalesceMs, heartbeatMs: this.heartbeatMs, wakeSoon: this.wakeSoon, leadingEdge: this.leadingEdge },
      (ended) => this.forget(ended),
    );
    this.subscriptions.add(subscription);
    for (const name of filterBuckets(normalized)) {
      let set = this.buckets.get(name);
      if (!set) this.buckets.set(name, (set = new Set()));
      set.add(subscription);
    }
    if (signal) {
      if (signal.aborted) {
        subscription.close();
        return subscription;
      }
      const onAbort = () => subscription.close();
      signal.addEventListener("abort", onAbort, { once: true });
      this.abortCleanups.set(subscription, () => signal.removeEventListener("abort", onAbort));
    }
    return subscription;
  }

  /** Ends every watch with UNAVAILABLE and stops listening to the pool. */
  close(message = "keypool is shutting down; reconnect to another server or retry"): void {
    if (this.closedWith) return;
    this.closedWith = new PoolError(ErrorCode.Unavailable, message);
    this.unsubscribeFeed?.();
    this.unsubscribeFeed = null;
    for (const subscription of [...this.subscriptions]) subscription.fail(this.closedWith);
    this.keys.clear();
  }

  /** Open watches (for tests and metrics). */
  get subscriberCount(): number {
    return this.subscriptions.size;
  }

  /** AbortSignal listeners the hub still holds: one per open watch that was given a signal. */
  get signalListenerCount(): number {
    return this.abortCleanups.size;
  }

  /** Index entries: zero when no watch is open. */
  get indexedCount(): number {
    let n = 0;
    for (const set of this.buckets.values()) n += set.size;
    return n;
  }

  /** Timers held by watches: at most one per watch (zero once every watch has ended). */
  get timerCount(): number {
    let n = 0;
    for (const subscription of this.subscriptions) if (subscription.hasTimer) n++;
    return n;
  }

  /** Pending changes held for all watches together. */
  get pendingCount(): number {
    let n = 0;
    for (const subscription of this.subscriptions) n += subscription.pendingCount;
    return n;
  }

  /** The most pending changes any one watch holds: never more than the number of keys. */
  get largestPending(): number {
    let n = 0;
    for (const subscription of this.subscriptions) n = Math.max(n, subscription.pendingCount);
    return n;
  }

  private onChange(event: PoolEvent): void {
    this.leading = this.subscriptions.size === 0 || !this.saturated();
    if (event.type === "updated") {
      const status = event.status;
      const before = this.keys.get(status.keyHash);
      // Most changes (a lease, a report) keep provider and families: keep the stored copy then.
      const moved = !before || !sameAttributes(before, status);
      const after = moved ? attributesOf(status) : before;
      if (moved) this.keys.set(status.keyHash, after);
      const stamp = ++this.stamp;
      this.visit(after, stamp, (subscription) => {
        if (!keyMatches(subscription.filter, after)) return;
        subscription.offerUpdate(status, before !== undefined && keyMatches(subscription.filter, before));
      });
      // A key whose provider or families changed leaves the watches it no longer matches.
      if (before && moved) {
        this.visit(before, stamp, (subscription) => {
          if (keyMatches(subscription.filter, before) && !keyMatches(subscription.filter, after)) {
            subscription.offerRemoval(status.keyHash);
          }
        });
      }
    } else {
      const before = this.keys.get(event.keyHash) ?? { provider: event.provider, modelFamilies: event.modelFamilies };
      this.keys.delete(event.keyHash);
      this.visit(before, ++this.stamp, (subscription) => {
        if (keyMatches(subscription.filter, before)) subscription.offerRemoval(event.keyHash);
      });
    }
  }

  /** Calls `fn` once for each watch indexed under a bucket the key falls in. */
  private visit(key: KeyAttributes, stamp: number, fn: (subscription: WatchSubscription) => void): void {
    for (const name of keyBuckets(key)) {
      const set = this.buckets.get(name);
      if (!set) continue;
      for (const subscription of set) {
        if (subscription.visitStamp === stamp) continue;
        subscription.visitStamp = stamp;
        fn(subscription);
      }
    }
  }

  private forget(subscription: WatchSubscription): void {
    this.subscriptions.delete(subscription);
    this.toWake.delete(subscription);
    for (const name of filterBuckets(subscription.filter)) {
      const set = this.buckets.get(name);
      if (!set) continue;
      set.delete(subscription);
      if (set.size === 0) this.buckets.delete(name);
    }
    this.abortCleanups.get(subscription)?.();
    this.abortCleanups.delete(subscription);
  }
}

/**
 * True while the event loop was busy at least `threshold` of the last `periodMs` (re-measured at
 * most once per period, so asking costs a clock read).
 */
export function eventLoopSaturated(threshold: number, periodMs: number): () => boolean {
  let last = performance.eventLoopUtilization();
  let lastAt = performance.now();
  let saturated = false;
  return () => {
    const now = performance.now();
    if (now - lastAt >= periodMs) {
      const current = performance.eventLoopUtilization();
      saturated = performance.eventLoopUtilization(current, last).utilization >= threshold;
      last = current;
      lastAt = now;
    }
    return saturated;
  };
}

function attributesOf(status: KeyStatus): KeyAttributes {
  return { provider: status.provider, modelFamilies: [...status.modelFamilies] };
}

function nonNegative(name: string, value: number): number {
  if (!(value >= 0)) throw new RangeError(`${name} must be 0 or more, got ${value}`);
  return value;
}

function positive(name: string, value: number): number {
  if (!(value > 0)) throw new RangeError(`${name} must be more than 0, got ${value}`);
  return value;
}
