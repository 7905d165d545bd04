import type { Clock, Timer } from "../domain/clock";
import type { KeyStatus } from "../domain/types";
import type { WatchFilter } from "./watch-filter";

/** One message of a watch, before it becomes a keypool.v1.WatchKeysResponse. */
export type WatchEvent =
  | { type: "snapshot"; sequence: number; time: number; keys: KeyStatus[] }
  | { type: "updated"; sequence: number; time: number; status: KeyStatus }
  | { type: "removed"; sequence: number; time: number; keyHash: string }
  | { type: "heartbeat"; sequence: number; time: number };

/** What is waiting to be told about one key: its latest status, or that it is gone. */
interface PendingChange {
  /** The end of this key's coalescing window: the first change to the key plus the window. */
  dueAt: number;
  status: KeyStatus | null;
  /** Whether the subscriber has been told about this key, so that a removal means something. */
  known: boolean;
}

export interface SubscriptionTiming {
  clock: Clock;
  coalesceMs: number;
  heartbeatMs: number;
}

/**
 * One open watch. It pulls: nothing is produced until the consumer asks for the next message, so
 * a consumer that stops reading (HTTP/2 flow control) holds at most one pending change per key,
 * whatever the time it stays away. Pending changes sit in a Map in the order their windows began;
 * as every window has the same length, the first entry is always the first one due.
 */
export class WatchSubscription implements AsyncIterableIterator<WatchEvent> {
  private snapshot: KeyStatus[] | null;
  private readonly pending = new Map<string, PendingChange>();
  private sequence = 0;
  private lastSentAt: number;
  private waiter: {
    resolve: (result: IteratorResult<WatchEvent>) => void;
    reject: (error: unknown) => void;
  } | null = null;
  private timer: Timer | null = null;
  private timerDueAt = Infinity;
  private ended = false;
  private failure: unknown = null;
  /** Hub bookkeeping: the last change this subscription saw, so it is visited once per change. */
  visitStamp = 0;

  constructor(
    readonly filter: WatchFilter,
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
    return this.pending.size;
  }

  get hasTimer(): boolean {
    return this.timer !== null;
  }

  get isOpen(): boolean {
    return !this.ended;
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
    const entry = this.pending.get(status.keyHash);
    if (entry) {
      entry.status = status;
      return;
    }
    this.add(status.keyHash, { dueAt: this.timing.clock.now() + this.timing.coalesceMs, status, known: knownBefore });
  }

  /** The key left the pool, or stopped matching the filter. */
  offerRemoval(keyHash: string): void {
    const entry = this.pending.get(keyHash);
    if (entry) {
      // Added and gone within one window: the subscriber never needs to hear of it.
      if (!entry.known) this.pending.delete(keyHash);
      else entry.status = null;
      return;
    }
    this.add(keyHash, { dueAt: this.timing.clock.now() + this.timing.coalesceMs, status: null, known: true });
  }

  private add(keyHash: string, entry: PendingChange): void {
    this.pending.set(keyHash, entry);
    if (!this.waiter) return;
    if (entry.dueAt <= this.timing.clock.now()) this.wake();
    else if (entry.dueAt < this.timerDueAt) this.schedule();
  }

  /** The next message due now, if any. */
  private take(): WatchEvent | null {
    const now = this.timing.clock.now();
    if (this.snapshot) {
      const keys = this.snapshot;
      this.snapshot = null;
      return this.stamp({ type: "snapshot", sequence: 0, time: now, keys });
    }
    const first = this.pending.entries().next();
    if (!first.done && first.value[1].dueAt <= now) {
      const [keyHash, entry] = first.value;
      this.pending.delete(keyHash);
      return this.stamp(
        entry.status
          ? { type: "updated", sequence: 0, time: now, status: entry.status }
          : { type: "removed", sequence: 0, time: now, keyHash },
      );
    }
    if (now - this.lastSentAt >= this.timing.heartbeatMs) {
      return this.stamp({ type: "heartbeat", sequence: 0, time: now });
    }
    return null;
  }

  private stamp(event: WatchEvent): WatchEvent {
    event.sequence = ++this.sequence;
    this.lastSentAt = event.time;
    return event;
  }

  /** Sets the one timer this subscription may hold: the first window's end or the heartbeat. */
  private schedule(): void {
    const first = this.pending.values().next();
    const dueAt = Math.min(first.done ? Infinity : first.value.dueAt, this.lastSentAt + this.timing.heartbeatMs);
    if (this.timer && dueAt === this.timerDueAt) return;
    this.cancelTimer();
    this.timerDueAt = dueAt;
    this.timer = this.timing.clock.setTimer(dueAt - this.timing.clock.now(), () => {
      this.timer = null;
      this.timerDueAt = Infinity;
      this.wake();
    });
  }

  private wake(): void {
    if (!this.waiter) return;
    const event = this.take();
    if (!event) {
      this.schedule();
      return;
    }
    const { resolve } = this.waiter;
    this.waiter = null;
    this.cancelTimer();
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
    this.pending.clear();
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
