import type { Clock, Timer } from "../domain/clock";
import type { KeyStatus } from "../domain/types";
import type { KeyFilter } from "../domain/key-filter";

/** One message of a watch, before it becomes a keypool.v1.WatchKeysResponse. */
export type WatchEvent =
  | { type: "snapshot"; sequence: number; time: number; keys: KeyStatus[] }
  | { type: "updated"; sequence: number; time: number; status: KeyStatus }
  | { type: "removed"; sequence: number; time: number; keyHash: string }
  | { type: "heartbeat"; sequence: number; time: number };

/** What is waiting to be told about one key: its latest status, or that it is gone. */
interface PendingChange {
  status: KeyStatus | null;
  /** Whether the subscriber has been told about this key, so that a removal means something. */
  known: boolean;
}

/** A key sent within the last window: later changes to it wait, merged, until `until`. */
interface RecentKey {
  /** The end of the key's window: when it was last sent plus the window. */
  until: number;
  /** The change that came within the window, merged to its latest state; null: none yet. */
  change: PendingChange | null;
}

export interface SubscriptionTiming {
  clock: Clock;
  coalesceMs: number;
  heartbeatMs: number;
  /**
   * Asks for `subscription.wake()` soon, not within the pool's turn: a change must not make the
   * call that caused it (a Lease) wait for every watch's message, and the changes of one turn
   * reach a watch together. Absent: at once.
   */
  wakeSoon?: (subscription: WatchSubscription) => void;
  /**
   * Whether a key's first change after a quiet window may go out at once (leading edge). When
   * it says no (the server is saturated), the change waits for the end of the window it opens,
   * as every change to a busy key does. Absent: always.
   */
  leadingEdge?: () => boolean;
}

/**
 * One open watch. It pulls: nothing is produced until the consumer asks for the next message, so
 * a consumer that stops reading (HTTP/2 flow control) holds at most one pending change per key,
 * whatever the time it stays away.
 *
 * Coalescing throttles, it does not delay: a key's first change after a quiet window is due at
 * once; a key that was sent less than `coalesceMs` ago keeps its later changes, merged into the
 * latest state, until its window ends, and then sends them as one message (which opens the next
 * window). So a key reaches a subscriber at most once per window, and a change on a quiet pool
 * waits for nothing.
 *
 * Every key is in at most one of two maps: `due` (changes to send now, in the order they became
 * due) or `recent` (keys sent within the last window, in the order they were sent, which is the
 * order their windows end, as every window has the same length). Both are bounded by the number
 * of keys; `recent` also forgets a key once its window has ended.
 */
export class WatchSubscription implements AsyncIterableIterator<WatchEvent> {
  private snapshot: KeyStatus[] | null;
  private readonly due = new Map<string, PendingChange>();
  private readonly recent = new Map<string, RecentKey>();
  /** Entries of `recent` that hold a change. */
  private held = 0;
  private sequence = 0;
  private lastSentAt: number;
  private waiter: {
    resolve: (result: IteratorResult<WatchEvent>) => void;
    reject: (error: unknown) => void;
  } | null = null;
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

  constructor(
    readonly filter: KeyFilter,
    snapshot: KeyStatus[],
    private readonly timing: SubscriptionTiming,
    private readonly onEnd: (subscription: WatchSubscription) => void,
  ) {
    this.snapshot = snapshot;
    this.lastSentAt = timing.clock.now();
  }

  [Symbol.asyncIterator](): this {
    return this;
  }

  /** How many keys have a change waiting for this subscriber (at most the number of keys). */
  get pendingCount(): number {
    return this.due.size + this.held;
  }

  get hasTimer(): boolean {
    return this.timer !== null;
  }

  next(): Promise<IteratorResult<WatchEvent>> {
    if (this.failure !== null) return Promise.reject(this.failure);
    if (this.ended) return Promise.resolve({ done: true, value: undefined });
    if (this.waiter) return Promise.reject(new Error("WatchSubscription.next called while a call is pending"));
    const ready = this.take();
    if (ready) return Promise.resolve({ done: false, value: ready });
    return new Promise((resolve, reject) => {
      this.waiter = { resolve, reject };
      this.schedule();
    });
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

  /** Called by the hub on the pool's turn: O(1), no I/O. */
  offerUpdate(status: KeyStatus, knownBefore: boolean): void {
    const entry = this.pendingFor(status.keyHash);
    if (entry) entry.status = status;
    else this.offer(status.keyHash, { status, known: knownBefore });
  }

  /** The key left the pool, or stopped matching the filter. */
  offerRemoval(keyHash: string): void {
    const entry = this.pendingFor(keyHash);
    if (!entry) {
      this.offer(keyHash, { status: null, known: true });
    } else if (entry.known) {
      entry.status = null;
    } else {
      // Added and gone within one window: the subscriber never needs to hear of it.
      if (this.due.delete(keyHash)) return;
      this.recent.get(keyHash)!.change = null;
      this.held--;
    }
  }

  /** The change already waiting for this key, if any: a later change merges into it. */
  private pendingFor(keyHash: string): PendingChange | null {
    return this.due.get(keyHash) ?? this.recent.get(keyHash)?.change ?? null;
  }

  /** A change to a key with none waiting: due now, unless the key was sent within the window. */
  private offer(keyHash: string, change: PendingChange): void {
    const now = this.timing.clock.now();
    const recent = this.recent.get(keyHash);
    if (recent && recent.until > now) {
      recent.change = change;
      this.held++;
      // A waiting consumer needs a timer for this window's end (unless an earlier one is set).
      if (this.waiter && recent.until < this.timerDueAt) this.schedule();
      return;
    }
    if (recent) this.recent.delete(keyHash); // its window has ended (and held nothing): out at once
    if (this.timing.coalesceMs > 0 && this.timing.leadingEdge && !this.timing.leadingEdge()) {
      // The server has no time to spare: the change waits for the window it opens (trailing
      // edge), so that later changes within it cost no message.
      this.recent.set(keyHash, { until: now + this.timing.coalesceMs, change });
      this.held++;
      if (this.waiter && now + this.timing.coalesceMs < this.timerDueAt) this.schedule();
      return;
    }
    this.due.set(keyHash, change);
    if (!this.waiter) return;
    if (this.timing.wakeSoon) this.timing.wakeSoon(this);
    else this.wake();
  }

  /** The next message due now, if any. */
  private take(): WatchEvent | null {
    const now = this.timing.clock.now();
    if (this.snapshot) {
      const keys = this.snapshot;
      this.snapshot = null;
      return this.stamp({ type: "snapshot", sequence: 0, time: now, keys });
    }
    this.endWindows(now);
    const first = this.due.entries().next();
    if (!first.done) {
      const [keyHash, change] = first.value;
      this.due.delete(keyHash);
      if (this.timing.coalesceMs > 0) this.recent.set(keyHash, { until: now + this.timing.coalesceMs, change: null });
      return this.stamp(
        change.status
          ? { type: "updated", sequence: 0, time: now, status: change.status }
          : { type: "removed", sequence: 0, time: now, keyHash },
      );
    }
    if (now - this.lastSentAt >= this.timing.heartbeatMs) {
      return this.stamp({ type: "heartbeat", sequence: 0, time: now });
    }
    return null;
  }

  /** Forgets the keys whose window has ended; the changes they held become due, in window order. */
  private endWindows(now: number): void {
    for (const [keyHash, recent] of this.recent) {
      if (recent.until > now) return;
      this.recent.delete(keyHash);
      if (recent.change) {
        this.held--;
        this.due.set(keyHash, recent.change);
      }
    }
  }

  private stamp(event: WatchEvent): WatchEvent {
    event.sequence = ++this.sequence;
    this.lastSentAt = event.time;
    return event;
  }

  /**
   * Makes sure a timer wakes the waiting consumer by the next time something can be due: the end
   * of the first window that holds a change, or the heartbeat. An earlier timer is kept.
   */
  private schedule(): void {
    let dueAt = this.lastSentAt + this.timing.heartbeatMs;
    if (this.held > 0) {
      for (const recent of this.recent.values()) {
        if (recent.change) {
          dueAt = Math.min(dueAt, recent.until);
          break;
        }
      }
    }
    if (this.timer && this.timerDueAt <= dueAt) return;
    this.cancelTimer();
    this.timerDueAt = dueAt;
    this.timer = this.timing.clock.setTimer(dueAt - this.timing.clock.now(), () => {
      this.timer = null;
      this.timerDueAt = Infinity;
      this.wake();
    });
  }

  /** Gives the waiting consumer its next message if one is due (else sets the timer). */
  wake(): void {
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
    this.due.clear();
    this.recent.clear();
    this.held = 0;
    this.snapshot = null;
    const waiter = this.waiter;
    this.waiter = null;
    this.onEnd(this);
    if (waiter) {
      if (error !== null) waiter.reject(error);
      else waiter.resolve({ done: true, value: undefined });
    }
  }
}
