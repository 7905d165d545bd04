import type { Clock, Timer } from "../domain/clock";
import type { KeyStatus } from "../domain/types";
import type { KeySlots } from "./key-slots";
import { SlotBits } from "./slot-bits";
import type { SnapshotSlice } from "./snapshot-slices";
import { keyMatches, type KeyFilter } from "../domain/key-filter";
import { PULL, type PullNow } from "./pull-now";

/** One message of a watch, before it becomes a keypool.v1.WatchKeysResponse. */
export type WatchEvent =
  | { type: "snapshot"; sequence: number; time: number; keys: readonly KeyStatus[]; more: boolean }
  | { type: "updated"; sequence: number; time: number; status: KeyStatus }
  | { type: "removed"; sequence: number; time: number; keyHash: string }
  | { type: "changes"; sequence: number; time: number; updated: readonly KeyStatus[]; removed: readonly string[] }
  | { type: "heartbeat"; sequence: number; time: number };

export interface SubscriptionContext {
  clock: Clock;
  coalesceMs: number;
  heartbeatMs: number;
  /** One `changes` message per coalescing window instead of one message per key. */
  batch: boolean;
  /** The latest state of every key, shared by all watches. */
  keys: KeySlots;
  /** The snapshot slice after a key hash ("": the first), for this watch's filter. */
  nextSlice: (after: string) => SnapshotSlice;
  /**
   * Whether the slice after `after` may be sent in this turn of the event loop (the hub shares a
   * budget among all watches, smaller for slices not made yet); when not, the watch waits for
   * wakeSoon. Absent: always.
   */
  sliceAllowed?: (after: string) => boolean;
  /** Encoded size of a status, for the byte budget of a `changes` message. */
  measure: (status: KeyStatus) => number;
  /** Budget of one `changes` message: a window's changes beyond it follow in the next message. */
  messageBytes: number;
  /**
   * Asks for `subscription.wake()` soon, not within the pool's turn: a change must not make the
   * call that caused it (a Lease) wait for every watch's message, and the changes of one turn
   * reach a watch together. Absent: at once.
   */
  wakeSoon?: (subscription: WatchSubscription) => void;
  /**
   * The window this batched watch shares with the other batched watches of its filter
   * (src/watch/watch-group.ts): changes are offered to the group, not to the watch, and the watch
   * takes the group's closed sets. Absent: the watch keeps its own window and is offered changes.
   */
  shared?: SharedWindow;
  /** With `shared`: the stamp of the last change before this watch opened (its snapshot covers it). */
  openedAtStamp?: number;
}

/** What a watch reads from the window it shares with others (src/watch/watch-group.ts). */
export interface SharedWindow {
  /** Closes the set a leading change is waiting on, if any: the first watch to pull does. */
  sync(): void;
  /** Counts the sets closed so far. */
  generation(): number;
  /** The keys of the latest closed set. */
  closed(): SlotBits;
  /** The keys changed since. */
  open(): SlotBits;
  /**
   * The latest closed set as one `changes` message's list, kept for the watches that take it
   * whole (SharedBatch); made by the first of them, emptied when the next set closes.
   */
  batch: SharedBatch | null;
}

/**
 * A closed set of a shared window, listed once for every watch of the group: its keys in slot
 * order (the order a watch's own pass over its bits gives), each with the status a watch would
 * read now and the change stamp it was read at. A watch that owes exactly this set (nothing of
 * its own pending, past its snapshot, opened before the set's changes) sends this list instead of
 * taking the set into its bits and walking them; the list is made again once one of its keys has
 * changed since, so what a watch sends is still each key's current status.
 */
export interface SharedBatch {
  generation: number;
  slots: number[];
  stamps: number[];
  updated: KeyStatus[];
  /** The set's oldest change: a watch opened after it may not owe every key. */
  oldestStamp: number;
  /** Whether every key is in the pool and matches the filter, and the list fits one message. */
  whole: boolean;
}

const NO_REMOVALS: readonly string[] = Object.freeze([]);

/**
 * One open watch. It pulls: nothing is produced until the consumer asks for the next message.
 * What it holds per key is bits over the hub's key slots, never a status: `known` (the client
 * has the key), `dirty` (the client's copy is out of date: the next message for the key sends
 * the slot's latest status, or its removal when it no longer matches and was known) and, for
 * per-key coalescing, `recent` (sent within the last window) and `held` (changed since). So a
 * consumer that stops reading (HTTP/2 flow control) costs a few bits per key whatever the time it
 * stays away, and comes back to the latest state of each key once.
 *
 * The stream begins with snapshot slices (src/watch/snapshot-slices.ts); changes during them only
 * mark keys dirty, and go out after the last slice.
 *
 * Coalescing throttles, it does not delay. Per key (the default): a key's first change after a
 * quiet window is due at once; a key sent less than `coalesceMs` ago keeps its later changes
 * until its window ends, then sends its latest state as one message, which opens the next window.
 * With `batch`, the window is the watch's: the first change after a quiet window goes out at once
 * in a `changes` message with everything due, and the changes within the window it opens go out
 * together when it ends; when the hub gives the watch a shared window (`shared`, the group of
 * batched watches of its filter), the group keeps that window and the watch takes the keys of
 * each window the group closes into its own `dirty` bits when its consumer pulls. Either way a key
 * reaches the client at most once per window. While the
 * server is saturated (`offer(…, leading = false)`), a change that would go out at once waits for
 * the end of the window it opens instead.
 */
export class WatchSubscription implements AsyncIterableIterator<WatchEvent>, PullNow<WatchEvent> {
  private readonly known = new SlotBits();
  private readonly dirty = new SlotBits();
  private readonly recent = new SlotBits();
  private readonly held = new SlotBits();
  /** Keys in `recent`, in the order they were sent (= the order their windows end). */
  private windowSlots: number[] = [];
  private windowEnds: number[] = [];
  private windowHead = 0;
  /** Where the scan for the next dirty key resumes, so that every key gets its turn. */
  private cursor = 0;
  /** The last key hash of the snapshot sent so far; null once the last slice is out. */
  private snapshotAfter: string | null = "";
  /** Dirty keys are not sent before this time (the batch window, or a saturated server's hold). */
  private notBefore = -Infinity;
  /** When the `changes` message of the current window began (it may take several messages). */
  private batchOpenedAt: number | null = null;
  private sequence = 0;
  private lastSentAt: number;
  private waiter: {
    resolve: (result: IteratorResult<WatchEvent>) => void;
    reject: (error: unknown) => void;
  } | null = null;
  /** A consumer pulling with PULL (src/watch/pull-now.ts) waits here instead: no promise. */
  private ready: (() => void) | null = null;
  /**
   * The one timer this watch may hold. It is kept while it is due no later than needed (waking
   * early costs one look; re-arming a timer per message costs more), so it may outlive a wait.
   */
  private timer: Timer | null = null;
  private timerDueAt = Infinity;
  private ended = false;
  private failure: unknown = null;
  /** Hub bookkeeping: the last change this subscription saw, so it is visited once per change. */
  visitStamp = 0;
  /** With a shared window: the sets of it this watch has taken, by number. */
  private taken: number;

  constructor(
    readonly filter: KeyFilter,
    private readonly context: SubscriptionContext,
    private readonly onEnd: (subscription: WatchSubscription) => void,
  ) {
    this.lastSentAt = context.clock.now();
    this.taken = context.shared ? context.shared.generation() : 0;
  }

  [Symbol.asyncIterator](): this {
    return this;
  }

  /** How many keys have a change waiting for this subscriber (at most the number of keys). */
  get pendingCount(): number {
    const shared = this.context.shared;
    if (!shared || this.ended) return this.dirty.size + this.held.size;
    const owed = new Set<number>();
    const count = (set: SlotBits) => set.forEach((slot) => {
      if (!this.dirty.has(slot) && this.owes(slot)) owed.add(slot);
    });
    if (this.taken < shared.generation()) count(shared.closed());
    count(shared.open());
    return this.dirty.size + owed.size;
  }

  /** Whether a consumer is waiting for the next message. */
  get waiting(): boolean {
    return this.waiter !== null || this.ready !== null;
  }

  /**
   * Takes a shared window's sets into this watch's own bits: `closed` (set number `generation`)
   * unless it was taken already, and `open` when given. Called by the group for a watch that did
   * not take a set before the next one closed, and by the watch itself when it pulls.
   */
  takeShared(generation: number, closed: SlotBits, open: SlotBits | null): void {
    if (this.ended) return;
    if (this.taken < generation) {
      closed.forEach((slot) => {
        if (this.owes(slot)) this.dirty.add(slot);
      });
      this.taken = generation;
    }
    if (open) {
      open.forEach((slot) => {
        if (this.owes(slot)) this.dirty.add(slot);
      });
    }
  }

  /**
   * A shared set may name keys whose last change came before this watch opened: its snapshot has
   * those. During the snapshot, as in offer(), only keys its slices have passed are owed.
   */
  private owes(slot: number): boolean {
    if (this.snapshotAfter !== null && !(this.context.keys.hashAt(slot) <= this.snapshotAfter)) return false;
    return this.context.keys.changedAt(slot) > (this.context.openedAtStamp ?? -Infinity);
  }

  get hasTimer(): boolean {
    return this.timer !== null;
  }

  /** Whether this watch still needs the slot (the hub reclaims a removed key's slot otherwise). */
  refersTo(slot: number): boolean {
    return this.known.has(slot) || this.dirty.has(slot) || this.held.has(slot);
  }

  next(): Promise<IteratorResult<WatchEvent>> {
    if (this.failure !== null) return Promise.reject(this.failure);
    if (this.ended) return Promise.resolve({ done: true, value: undefined });
    if (this.waiting) return Promise.reject(new Error("WatchSubscription.next called while a call is pending"));
    const ready = this.take();
    if (ready) return Promise.resolve({ done: false, value: ready });
    return new Promise((resolve, reject) => {
      this.waiter = { resolve, reject };
      this.schedule();
    });
  }

  /**
   * The next message if one is due, as next() would give it, without a promise; else null, and
   * `ready` is called once a message is due or the watch has ended (src/watch/pull-now.ts).
   */
  [PULL](ready: () => void): IteratorResult<WatchEvent> | null {
    if (this.failure !== null) throw this.failure;
    if (this.ended) return { done: true, value: undefined };
    if (this.waiting) throw new Error("WatchSubscription pulled while a call is pending");
    const event = this.take();
    if (event) return { done: false, value: event };
    this.ready = ready;
    this.schedule();
    return null;
  }

  return(): Promise<IteratorResult<WatchEvent>> {
    this.close();
    return Promise.resolve({ done: true, value: undefined });
  }

  /** Ends the watch: the consumer's pending call finishes as done, everything held is dropped. */
  close(): void {
    this.finish(null);
  }

  /** Ends the watch with an error (e.g. UNAVAILABLE at shutdown) for the consumer to see. */
  fail(error: unknown): void {
    this.finish(error);
  }

  /**
   * Called by the hub on the pool's turn, for a key that matches this watch's filter before or
   * after its change: O(1), no I/O. `leading`: whether the server has time for leading-edge sends.
   * `now`: the time of the change, read once by the hub for every watch it offers the change to.
   */
  offer(slot: number, leading: boolean, now = this.context.clock.now()): void {
    if (this.ended) return;
    if (this.snapshotAfter !== null) {
      // A key the snapshot has not reached yet goes out in a later slice as it is then (or is
      // marked by takeSlice if that slice is older than its change): only keys already passed
      // are owed a resend, so a watch stuck early in its snapshot holds next to nothing.
      if (this.context.keys.hashAt(slot) <= this.snapshotAfter) this.dirty.add(slot);
      return;
    }
    if (this.recent.has(slot)) {
      this.endWindows(now);
      if (this.recent.has(slot)) {
        // Sent within its window: held until the window ends.
        if (this.held.add(slot) && this.waiting) this.schedule();
        return;
      }
    }
    if (!this.dirty.add(slot)) return;
    if (!leading && this.context.coalesceMs > 0 && this.notBefore <= now) this.notBefore = now + this.context.coalesceMs;
    if (!this.waiting) return;
    if (now < this.notBefore) {
      this.schedule();
      return;
    }
    if (this.context.wakeSoon) this.context.wakeSoon(this);
    else this.wake();
  }

  /** The next message due now, if any. */
  private take(): WatchEvent | null {
    const now = this.context.clock.now();
    if (this.snapshotAfter !== null) {
      // A thousand watches opening at once share the turn with every other call.
      if (this.context.sliceAllowed && !this.context.sliceAllowed(this.snapshotAfter)) return null;
      return this.takeSlice(now);
    }
    const shared = this.context.shared;
    if (shared) {
      shared.sync();
      const whole = this.takeSharedBatch(shared, now);
      if (whole) return whole;
      this.takeShared(shared.generation(), shared.closed(), null);
    }
    this.endWindows(now);
    if (this.dirty.size > 0 && now >= this.notBefore) {
      const event = this.context.batch ? this.takeBatch(now) : this.takeOne(now);
      if (event) return event;
    }
    if (now - this.lastSentAt >= this.context.heartbeatMs) {
      return this.stamp({ type: "heartbeat", sequence: 0, time: now });
    }
    return null;
  }

  /**
   * The latest closed set of the shared window as this watch's next message, when the watch owes
   * exactly that set and it goes out whole (SharedBatch); else null, and take() goes the long way.
   */
  private takeSharedBatch(shared: SharedWindow, now: number): WatchEvent | null {
    const generation = shared.generation();
    if (this.taken >= generation || this.snapshotAfter !== null || this.dirty.size > 0 || now < this.notBefore) return null;
    const batch = this.currentBatch(shared, generation);
    if (!batch.whole || !(batch.oldestStamp > (this.context.openedAtStamp ?? -Infinity))) return null;
    this.taken = generation;
    const { slots } = batch;
    for (let i = 0; i < slots.length; i++) this.known.add(slots[i]!);
    this.cursor = 0;
    if (batch.updated.length === 0) return null;
    return this.stamp({ type: "changes", sequence: 0, time: now, updated: batch.updated, removed: NO_REMOVALS });
  }

  /** The shared window's batch of its latest closed set, listed again if a key changed since. */
  private currentBatch(shared: SharedWindow, generation: number): SharedBatch {
    const { keys } = this.context;
    const kept = shared.batch;
    if (kept && kept.generation === generation) {
      let current = true;
      for (let i = 0; i < kept.slots.length && current; i++) current = keys.changedAt(kept.slots[i]!) === kept.stamps[i];
      if (current) return kept;
    }
    const batch: SharedBatch = { generation, slots: [], stamps: [], updated: [], oldestStamp: Infinity, whole: true };
    let bytes = 0;
    shared.closed().forEach((slot) => {
      const stamp = keys.changedAt(slot);
      const status = keys.statusAt(slot);
      batch.slots.push(slot);
      batch.stamps.push(stamp);
      if (stamp < batch.oldestStamp) batch.oldestStamp = stamp;
      if (!status || !keyMatches(this.filter, status)) {
        batch.whole = false;
        return;
      }
      batch.updated.push(status);
      bytes += this.context.measure(status);
    });
    if (batch.updated.length > 1 && bytes > this.context.messageBytes) batch.whole = false;
    shared.batch = batch;
    return batch;
  }

  private takeSlice(now: number): WatchEvent {
    const { keys } = this.context;
    const slice = this.context.nextSlice(this.snapshotAfter!);
    for (const slot of slice.slots) {
      this.known.add(slot);
      // Changed since the slice was made (it may be shared, and older than this watch): resend.
      if (keys.changedAt(slot) > slice.stamp) this.dirty.add(slot);
      else this.dirty.delete(slot);
    }
    this.snapshotAfter = slice.more ? slice.keys[slice.keys.length - 1]!.keyHash : null;
    return this.stamp({ type: "snapshot", sequence: 0, time: now, keys: slice.keys, more: slice.more });
  }

  /** What the client must hear about a dirty key: its latest status, its removal, or nothing. */
  private resolve(slot: number): KeyStatus | string | null {
    const status = this.context.keys.statusAt(slot);
    if (status && keyMatches(this.filter, status)) {
      this.known.add(slot);
      return status;
    }
    // Gone (or out of the filter): news only to a client that has it.
    if (this.known.delete(slot)) return this.context.keys.hashAt(slot);
    return null;
  }

  private takeOne(now: number): WatchEvent | null {
    for (;;) {
      const slot = this.dirty.nextFrom(this.cursor);
      if (slot < 0) return null;
      this.cursor = slot + 1;
      this.dirty.delete(slot);
      const news = this.resolve(slot);
      if (news === null) continue;
      if (this.context.coalesceMs > 0) {
        this.recent.add(slot);
        this.windowSlots.push(slot);
        this.windowEnds.push(now + this.context.coalesceMs);
      }
      return this.stamp(
        typeof news === "string"
          ? { type: "removed", sequence: 0, time: now, keyHash: news }
          : { type: "updated", sequence: 0, time: now, status: news },
      );
    }
  }

  private takeBatch(now: number): WatchEvent | null {
    const updated: KeyStatus[] = [];
    const removed: string[] = [];
    let bytes = 0;
    for (;;) {
      const slot = this.dirty.nextFrom(this.cursor);
      if (slot < 0) break;
      const status = this.context.keys.statusAt(slot);
      const size = status ? this.context.measure(status) : this.context.keys.hashAt(slot).length + 2;
      if (updated.length + removed.length > 0 && bytes + size > this.context.messageBytes) break;
      this.cursor = slot + 1;
      this.dirty.delete(slot);
      const news = this.resolve(slot);
      if (news === null) continue;
      if (typeof news === "string") removed.push(news);
      else updated.push(news);
      bytes += size;
    }
    if (this.batchOpenedAt === null) this.batchOpenedAt = now;
    if (this.dirty.size === 0) {
      // The window's changes are out: the next ones wait for the window's end (a shared window's
      // end is the group's: it hands over the next set then).
      if (!this.context.shared) this.notBefore = Math.max(this.notBefore, this.batchOpenedAt + this.context.coalesceMs);
      this.batchOpenedAt = null;
      // Every key had its turn: the next batch lists its keys in slot order, as every watch with
      // the same changes due does, so that they can share one encoded body.
      this.cursor = 0;
    }
    if (updated.length + removed.length === 0) return null;
    return this.stamp({ type: "changes", sequence: 0, time: now, updated, removed });
  }

  /** Ends the windows that are over; the changes they held become due. */
  private endWindows(now: number): void {
    let head = this.windowHead;
    while (head < this.windowSlots.length && this.windowEnds[head]! <= now) {
      const slot = this.windowSlots[head++]!;
      this.recent.delete(slot);
      if (this.held.delete(slot)) this.dirty.add(slot);
    }
    if (head === this.windowSlots.length) {
      this.windowSlots.length = 0;
      this.windowEnds.length = 0;
      head = 0;
    } else if (head > 1024 && head * 2 > this.windowSlots.length) {
      this.windowSlots = this.windowSlots.slice(head);
      this.windowEnds = this.windowEnds.slice(head);
      head = 0;
    }
    this.windowHead = head;
  }

  private stamp(event: WatchEvent): WatchEvent {
    event.sequence = ++this.sequence;
    this.lastSentAt = event.time;
    return event;
  }

  /**
   * Makes sure a timer wakes the waiting consumer by the next time something can be due: the end
   * of the hold on dirty keys, the end of the first window that holds a change, or the heartbeat.
   * An earlier timer is kept.
   */
  private schedule(): void {
    const now = this.context.clock.now();
    if (this.snapshotAfter !== null && this.context.wakeSoon) {
      // The next slice waits for a turn with room in the slice budget, not for a time.
      this.context.wakeSoon(this);
      return;
    }
    let dueAt = this.lastSentAt + this.context.heartbeatMs;
    if (this.snapshotAfter !== null) dueAt = now;
    if (this.dirty.size > 0) dueAt = Math.min(dueAt, Math.max(now, this.notBefore));
    if (this.held.size > 0) {
      for (let i = this.windowHead; i < this.windowSlots.length; i++) {
        if (this.held.has(this.windowSlots[i]!)) {
          dueAt = Math.min(dueAt, Math.max(this.windowEnds[i]!, this.notBefore));
          break;
        }
      }
    }
    if (this.timer && this.timerDueAt <= dueAt) return;
    this.cancelTimer();
    this.timerDueAt = dueAt;
    this.timer = this.context.clock.setTimer(Math.max(0, dueAt - now), () => {
      this.timer = null;
      this.timerDueAt = Infinity;
      this.wake();
    });
  }

  /** Gives the waiting consumer its next message if one is due (else sets the timer). */
  wake(): void {
    const ready = this.ready;
    if (ready) {
      // A pulling consumer takes the message itself, now: handing it over is one call.
      this.ready = null;
      ready();
      return;
    }
    if (!this.waiter) return;
    const event = this.take();
    if (!event) {
      this.schedule();
      return;
    }
    const { resolve } = this.waiter;
    this.waiter = null;
    resolve({ done: false, value: event });
  }

  private cancelTimer(): void {
    this.timer?.cancel();
    this.timer = null;
    this.timerDueAt = Infinity;
  }

  private finish(error: unknown): void {
    if (this.ended) return;
    this.ended = true;
    this.failure = error;
    this.cancelTimer();
    this.known.clear();
    this.dirty.clear();
    this.recent.clear();
    this.held.clear();
    this.windowSlots = [];
    this.windowEnds = [];
    this.windowHead = 0;
    const waiter = this.waiter;
    this.waiter = null;
    const ready = this.ready;
    this.ready = null;
    this.onEnd(this);
    ready?.();
    if (waiter) {
      if (error !== null) waiter.reject(error);
      else waiter.resolve({ done: true, value: undefined });
    }
  }
}
