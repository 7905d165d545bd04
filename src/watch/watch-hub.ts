import type { Clock } from "../domain/clock";
import { ErrorCode, PoolError } from "../domain/errors";
import { keyMatches, type KeyAttributes, type KeyFilter } from "../domain/key-filter";
import type { WatchedPool } from "../domain/pool-api";
import { sameList } from "../domain/same-list";
import type { KeyStatus, PoolEvent } from "../domain/types";
import { DEFAULT_STATUS_CACHE, KeySlots } from "./key-slots";
import { filterKeyOf, SnapshotSlices } from "./snapshot-slices";
import { filterBuckets, keyBuckets } from "./watch-filter";
import { WatchGroup } from "./watch-group";
import { WatchSubscription } from "./watch-subscription";

/** What a change is offered to: an ungrouped watch, or the group of batched watches of one filter. */
type Watcher = WatchSubscription | WatchGroup;

export interface WatchHubOptions {
  clock: Clock;
  /** KEYPOOL_WATCH_COALESCE: changes to one key within this window reach a subscriber as one. */
  coalesceMs?: number;
  /** KEYPOOL_WATCH_HEARTBEAT: a heartbeat goes out after this long without a message. */
  heartbeatMs?: number;
  /** At most this many open watches; past it, subscribe throws RESOURCE_EXHAUSTED. */
  maxSubscribers?: number;
  /**
   * The encoded size of a status (the transport's protobuf encoding), for the byte budgets of
   * snapshot slices and `changes` messages. Default: an estimate.
   */
  measure?: (status: KeyStatus) => number;
  /** Budget of one snapshot slice or `changes` message, in encoded status bytes. */
  messageBytes?: number;
  /**
   * Runs the waking of watches after the pool's turn (default setImmediate): the call that made a
   * change is answered first, and the changes of one turn reach each watch in one go.
   */
  defer?: (callback: () => void) => void;
  /**
   * Whether the server is too busy for leading-edge delivery (default: the event loop was busy
   * at least 90% of the last 100 ms). When it is, a change that would go out at once waits for
   * the end of the window it opens, like the changes that follow it: one message per key per
   * window instead of up to two, and the fan-out does not take the time of the calls that make
   * the changes.
   */
  saturated?: () => boolean;
  /**
   * Statuses kept for sending, at most (src/watch/key-slots.ts): the watches that send one change
   * within the time this many changes take share one status and its encoding.
   */
  statusCacheSize?: number;
}

export const DEFAULT_WATCH_COALESCE_MS = 100;
export const DEFAULT_WATCH_HEARTBEAT_MS = 15_000;
/**
 * Encoded statuses in one snapshot slice or `changes` message: far under any client's 4 MiB
 * limit, and small enough that a thousand watches whose clients stopped reading, each with one
 * message stuck in its stream, hold little.
 */
export const DEFAULT_WATCH_MESSAGE_BYTES = 16 * 1024;
/** Watches woken per turn when a change reaches many at once. */
const WAKE_BATCH = 50;
/**
 * Snapshot slices sent per turn of the event loop, all watches together: a thousand watches
 * opening at once take their snapshots a few slices at a time, and the calls that arrive
 * meanwhile are served between them.
 */
const SLICES_PER_TURN = 16;
/**
 * Of those, slices made afresh (a listing, and each status's first encoding): sharing a slice
 * costs nothing, making one costs a hundred encodings, so one per turn.
 */
const NEW_SLICES_PER_TURN = 1;
/** A shared snapshot slice is made again once it is older than this. */
const SLICE_MAX_AGE_MS = 1000;
/** Encoded status bytes the shared snapshot slices may hold together. */
const SLICE_CACHE_BYTES = 32 * 1024 * 1024;
/** Removed keys' slots kept for watches that still owe the removal, beyond the live keys. */
const MIN_TOMBSTONES = 1024;

/**
 * Fans the pool's change feed out to any number of watches. It listens to the pool once and keeps
 * per key a slot with what routing needs (KeySlots), not the key's status; a change to a key costs
 * one bit set per watch whose filter can match the key (watches are indexed by provider and
 * family), and one per filter for all the batched watches of that filter together (WatchGroup),
 * never a message: messages are made when a watch's consumer pulls, from the keys' current
 * statuses, read from the pool then and shared by the watches that send them.
 */
export class WatchHub {
  private readonly clock: Clock;
  private readonly coalesceMs: number;
  private readonly heartbeatMs: number;
  private readonly maxSubscribers: number;
  private readonly measure: (status: KeyStatus) => number;
  private readonly messageBytes: number;
  private readonly keys: KeySlots;
  private readonly slices: SnapshotSlices;
  private readonly buckets = new Map<string, Set<Watcher>>();
  /** Batched watches by filter (filterKeyOf), sharing one window each (src/watch/watch-group.ts). */
  private readonly groups = new Map<string, WatchGroup>();
  private readonly subscriptions = new Set<WatchSubscription>();
  private readonly abortCleanups = new Map<WatchSubscription, () => void>();
  private unsubscribeFeed: (() => void) | null;
  private readonly pool: WatchedPool;
  private slotsFilled = false;
  /** Counts changes: each slot keeps the stamp of its last one. */
  private stamp = 0;
  private closedWith: PoolError | null = null;
  private readonly defer: (callback: () => void) => void;
  private readonly saturated: () => boolean;
  private slicesThisTurn = 0;
  private newSlicesThisTurn = 0;
  private sliceAllowed(filterKey: string, after: string): boolean {
    if (this.slicesThisTurn >= SLICES_PER_TURN) return false;
    const made = !this.slices.shared(filterKey, after);
    if (made && this.newSlicesThisTurn >= NEW_SLICES_PER_TURN) return false;
    if (this.slicesThisTurn++ === 0) {
      setImmediate(() => {
        this.slicesThisTurn = 0;
        this.newSlicesThisTurn = 0;
      });
    }
    if (made) this.newSlicesThisTurn++;
    return true;
  }
  /** Watches with a change due and a consumer waiting, to wake once the pool's turn is over. */
  private readonly toWake = new Set<WatchSubscription>();
  private readonly wakeSoon = (subscription: WatchSubscription) => {
    this.toWake.add(subscription);
    this.scheduleWake();
  };
  /** Whether a deferred wakeAll is due: one at a time, however the waking started. */
  private wakeScheduled = false;
  private scheduleWake(): void {
    if (this.wakeScheduled) return;
    this.wakeScheduled = true;
    this.defer(this.wakeDeferred);
  }
  private readonly wakeDeferred = () => {
    this.wakeScheduled = false;
    this.wakeAll();
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
        this.scheduleWake();
        return;
      }
      this.toWake.delete(subscription);
      subscription.wake();
    }
  };

  constructor(
    pool: WatchedPool,
    options: WatchHubOptions,
  ) {
    this.clock = options.clock;
    this.coalesceMs = nonNegative("coalesceMs", options.coalesceMs ?? DEFAULT_WATCH_COALESCE_MS);
    this.heartbeatMs = positive("heartbeatMs", options.heartbeatMs ?? DEFAULT_WATCH_HEARTBEAT_MS);
    this.maxSubscribers = positive("maxSubscribers", options.maxSubscribers ?? Infinity);
    this.measure = options.measure ?? estimateStatusBytes;
    this.messageBytes = positive("messageBytes", options.messageBytes ?? DEFAULT_WATCH_MESSAGE_BYTES);
    this.defer = options.defer ?? ((callback) => void setImmediate(callback));
    this.saturated = options.saturated ?? eventLoopSaturated(0.9, 100);
    this.keys = new KeySlots((keyHash) => pool.getKey(keyHash), options.statusCacheSize ?? DEFAULT_STATUS_CACHE);
    this.slices = new SnapshotSlices(pool, {
      clock: this.clock,
      measure: this.measure,
      slotOf: (keyHash) => this.keys.slotFor(keyHash),
      adopt: (slot, status) => this.keys.adopt(slot, status),
      sliceBytes: this.messageBytes,
      maxAgeMs: SLICE_MAX_AGE_MS,
      cacheBytes: SLICE_CACHE_BYTES,
    });
    this.pool = pool;
    this.unsubscribeFeed = pool.changes.subscribe((event) => this.onChange(event));
  }

  /**
   * The key slots are filled from the pool at the first watch, not when the server starts: a
   * replica joining a large pool serves without walking it once more first. Until then a change
   * needs no slot (no watch can owe it), and the fill reads the pool as it is by then (views: no
   * status is copied).
   */
  private fillSlots(): void {
    if (this.slotsFilled) return;
    this.slotsFilled = true;
    for (const key of this.pool.viewKeys()) this.keys.set(this.keys.slotFor(key.keyHash), key.provider, key.modelFamilies, 0);
  }

  /**
   * Opens a watch: it begins with snapshot slices of every matching key, then sends changes. The
   * watch ends when `signal` aborts (dropped at once, with everything it held), when its consumer
   * calls return(), or when the hub closes (the consumer then gets UNAVAILABLE). Opening costs no
   * listing: slices are made (and shared) as the consumer pulls them.
   */
  subscribe(filter: KeyFilter = {}, signal?: AbortSignal, options: { batch?: boolean } = {}): WatchSubscription {
    if (this.closedWith) throw this.closedWith;
    this.fillSlots();
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
    const filterKey = filterKeyOf(normalized);
    // Batched watches of one filter share a window, so a change visits them once, not once each.
    const group = options.batch === true && this.coalesceMs > 0 ? this.groupFor(normalized, filterKey) : null;
    const subscription = new WatchSubscription(
      normalized,
      {
        clock: this.clock,
        coalesceMs: this.coalesceMs,
        heartbeatMs: this.heartbeatMs,
        batch: options.batch === true,
        keys: this.keys,
        nextSlice: (after) => this.slices.next(normalized, filterKey, after, this.stamp),
        sliceAllowed: (after) => this.sliceAllowed(filterKey, after),
        measure: this.measure,
        messageBytes: this.messageBytes,
        wakeSoon: this.wakeSoon,
        shared: group?.window,
        openedAtStamp: this.stamp,
      },
      (ended) => this.forget(ended),
    );
    this.subscriptions.add(subscription);
    if (group) group.members.add(subscription);
    else this.index(subscription);
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

  private groupFor(filter: KeyFilter, filterKey: string): WatchGroup {
    let group = this.groups.get(filterKey);
    if (!group) {
      group = new WatchGroup(filter, { clock: this.clock, coalesceMs: this.coalesceMs, wakeSoon: this.wakeSoon, wakeNow: this.wakeAll });
      this.groups.set(filterKey, group);
      this.index(group);
    }
    return group;
  }

  private index(watcher: Watcher): void {
    for (const name of filterBuckets(watcher.filter)) {
      let set = this.buckets.get(name);
      if (!set) this.buckets.set(name, (set = new Set()));
      set.add(watcher);
    }
  }

  private unindex(watcher: Watcher): void {
    for (const name of filterBuckets(watcher.filter)) {
      const set = this.buckets.get(name);
      if (!set) continue;
      set.delete(watcher);
      if (set.size === 0) this.buckets.delete(name);
    }
  }

  /** Ends every watch with UNAVAILABLE and stops listening to the pool. */
  close(message = "keypool is shutting down; reconnect to another server or retry"): void {
    if (this.closedWith) return;
    this.closedWith = new PoolError(ErrorCode.Unavailable, message);
    this.unsubscribeFeed?.();
    this.unsubscribeFeed = null;
    for (const subscription of [...this.subscriptions]) subscription.fail(this.closedWith);
    this.keys.clear();
    this.slices.membershipChanged();
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

  /** Timers held by watches and their groups: at most one each (zero once every watch has ended). */
  get timerCount(): number {
    let n = 0;
    for (const subscription of this.subscriptions) if (subscription.hasTimer) n++;
    for (const group of this.groups.values()) if (group.hasTimer) n++;
    return n;
  }

  /** Groups of batched watches sharing a window: one per filter in use (for tests). */
  get groupCount(): number {
    return this.groups.size;
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

  /** Key slots in use, removed keys' included (for tests). */
  get slotCount(): number {
    return this.keys.capacity;
  }

  /** Statuses held for sending (for tests): bounded by the status cache, whatever the keys. */
  get cachedStatusCount(): number {
    return this.keys.cachedStatuses;
  }

  private onChange(event: PoolEvent): void {
    if (!this.slotsFilled) return;
    const leading = this.subscriptions.size === 0 || !this.saturated();
    const stamp = ++this.stamp;
    // One clock read per change, not one per watch: a change visits every watch that matches it.
    const now = this.clock.now();
    if (event.type === "updated") {
      const key = event.key;
      const slot = this.keys.slotFor(key.keyHash);
      const provider = this.keys.providerAt(slot);
      // Most changes (a lease, a report) keep provider and families, and so every filter's keys.
      const moved = provider === null || provider !== key.provider || !sameList(this.keys.familiesAt(slot), key.modelFamilies);
      const before: KeyAttributes | null = moved && provider !== null ? { provider, modelFamilies: this.keys.familiesAt(slot) } : null;
      this.keys.set(slot, key.provider, key.modelFamilies, stamp);
      if (moved) this.slices.membershipChanged();
      if (this.subscriptions.size === 0) return;
      const offer = (watcher: Watcher) => {
        if (keyMatches(watcher.filter, key) || (before && keyMatches(watcher.filter, before))) {
          watcher.offer(slot, leading, now);
        }
      };
      this.visit(key, stamp, offer);
      // A key whose provider or families changed is news to the watches it no longer matches.
      if (before) this.visit(before, stamp, offer);
    } else {
      const slot = this.keys.slot(event.keyHash);
      if (slot === undefined) return;
      const provider = this.keys.providerAt(slot);
      const before: KeyAttributes =
        provider !== null ? { provider, modelFamilies: this.keys.familiesAt(slot) } : { provider: event.provider, modelFamilies: event.modelFamilies };
      this.keys.bury(slot, stamp);
      this.slices.membershipChanged();
      this.visit(before, stamp, (watcher) => {
        if (keyMatches(watcher.filter, before)) watcher.offer(slot, leading, now);
      });
      if (this.keys.tombstones > Math.max(MIN_TOMBSTONES, this.keys.live)) this.reclaimTombstones();
    }
  }

  /**
   * Frees the slots of removed keys that no watch still owes its client. If many remain (a watch
   * stopped reading while keys kept being removed), the watches holding them end with
   * UNAVAILABLE: their clients reconnect and start from a fresh snapshot, and the slots stay
   * bounded by the keys in the pool.
   */
  private reclaimTombstones(): void {
    // The groups' sets go to their watches first: then only watches refer to slots.
    for (const group of this.groups.values()) group.spill();
    const stuck = new Set<WatchSubscription>();
    for (const slot of [...this.keys.tombstoneSlots()]) {
      let referred = false;
      for (const subscription of this.subscriptions) {
        if (subscription.refersTo(slot)) {
          referred = true;
          stuck.add(subscription);
        }
      }
      if (!referred) this.keys.reclaim(slot);
    }
    if (this.keys.tombstones <= Math.max(MIN_TOMBSTONES, this.keys.live) / 2) return;
    const behind = new PoolError(
      ErrorCode.Unavailable,
      "this watch fell too far behind while keys were being removed; reconnect to start again from a snapshot",
    );
    for (const subscription of stuck) subscription.fail(behind);
    for (const slot of [...this.keys.tombstoneSlots()]) this.keys.reclaim(slot);
  }

  /** Calls `fn` once for each watch or group indexed under a bucket the key falls in. */
  private visit(key: KeyAttributes, stamp: number, fn: (watcher: Watcher) => void): void {
    for (const name of keyBuckets(key)) {
      const set = this.buckets.get(name);
      if (!set) continue;
      for (const watcher of set) {
        if (watcher.visitStamp === stamp) continue;
        watcher.visitStamp = stamp;
        fn(watcher);
      }
    }
  }

  private forget(subscription: WatchSubscription): void {
    this.subscriptions.delete(subscription);
    this.toWake.delete(subscription);
    const key = filterKeyOf(subscription.filter);
    const group = this.groups.get(key);
    if (group?.members.has(subscription)) {
      group.leave(subscription);
      if (group.members.size === 0) {
        this.groups.delete(key);
        this.unindex(group);
      }
    } else {
      this.unindex(subscription);
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

/** Roughly a status's protobuf size: the transport passes the exact one (measure). */
export function estimateStatusBytes(status: KeyStatus): number {
  let bytes = 96 + status.keyHash.length + status.organizationId.length + status.stateReason.length;
  for (const family of status.modelFamilies) bytes += family.length + 2;
  for (const family of Object.keys(status.usage)) bytes += family.length + 40;
  return bytes;
}

function nonNegative(name: string, value: number): number {
  if (!(value >= 0)) throw new RangeError(`${name} must be 0 or more, got ${value}`);
  return value;
}

function positive(name: string, value: number): number {
  if (!(value > 0)) throw new RangeError(`${name} must be more than 0, got ${value}`);
  return value;
}
