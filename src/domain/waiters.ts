import type { Clock, Timer } from "./clock";
import { ErrorCode, PoolError } from "./errors";
import type { Lease, ProviderId } from "./types";

/** What a queue of waiters waits for: keys of one family, trial keys allowed or not. */
export interface WaitTarget {
  provider: ProviderId;
  family: string;
  embedding: boolean;
}

export interface LeaseWaiter {
  readonly id: number;
  readonly queue: WaiterQueue;
  readonly resolve: (lease: Lease) => void;
  readonly reject: (error: PoolError) => void;
  /** Cancels the deadline timer and the abort listener. */
  cleanup: () => void;
}

/** FIFO of waiters; a Map keeps insertion order and removes any waiter in O(1). */
export interface WaiterQueue {
  readonly id: string;
  readonly target: WaitTarget;
  readonly waiters: Map<number, LeaseWaiter>;
}

export const queueId = (t: WaitTarget) => `${t.provider}/${t.family}/${t.embedding ? "embedding" : "any"}`;

export interface WaitHooks {
  /** The deadline came: the pool serves the queue once more, then rejects the waiter if it is still there. */
  onDeadline(waiter: LeaseWaiter): void;
  /** A waiter left (abort or deadline): the pool may re-plan its wake-up timer. */
  onLeave(): void;
}

/**
 * Lease calls waiting for a ready key, first come first served per WaitTarget. A waiter that
 * gives up (deadline, abort signal) leaves its queue at once, so it neither holds a place nor
 * gets a key nobody will use.
 */
export class WaiterQueues {
  private readonly queues = new Map<string, WaiterQueue>();
  private nextId = 1;
  private total = 0;

  constructor(
    private readonly clock: Clock,
    private readonly hooks: WaitHooks,
  ) {}

  get size(): number {
    return this.total;
  }

  lengthOf(target: WaitTarget): number {
    return this.queues.get(queueId(target))?.waiters.size ?? 0;
  }

  /** Queues that have waiters. */
  active(): WaiterQueue[] {
    return [...this.queues.values()].filter((q) => q.waiters.size > 0);
  }

  queueFor(target: WaitTarget): WaiterQueue | undefined {
    return this.queues.get(queueId(target));
  }

  /** Queues a waiter that gives up after `maxWaitMs` or when `signal` aborts. */
  wait(target: WaitTarget, maxWaitMs: number, signal?: AbortSignal): Promise<Lease> {
    const id = queueId(target);
    let queue = this.queues.get(id);
    if (!queue) {
      queue = { id, target, waiters: new Map() };
      this.queues.set(id, queue);
    }
    const q = queue;
    return new Promise<Lease>((resolve, reject) => {
      let deadline: Timer | undefined;
      const onAbort = () => {
        if (this.take(waiter)) {
          waiter.reject(new PoolError(ErrorCode.Cancelled, "the lease request was cancelled while waiting for a key"));
          this.hooks.onLeave();
        }
      };
      const waiter: LeaseWaiter = {
        id: this.nextId++,
        queue: q,
        resolve,
        reject,
        cleanup: () => {
          deadline?.cancel();
          signal?.removeEventListener("abort", onAbort);
        },
      };
      q.waiters.set(waiter.id, waiter);
      this.total++;
      signal?.addEventListener("abort", onAbort, { once: true });
      deadline = this.clock.setTimer(maxWaitMs, () => {
        deadline = undefined;
        if (q.waiters.has(waiter.id)) this.hooks.onDeadline(waiter);
      });
    });
  }

  /** Removes a waiter from its queue (and its timer and listener); false if already gone. */
  take(waiter: LeaseWaiter): boolean {
    if (!waiter.queue.waiters.delete(waiter.id)) return false;
    this.total--;
    waiter.cleanup();
    if (waiter.queue.waiters.size === 0) this.queues.delete(waiter.queue.id);
    return true;
  }

  /** The first waiter of a queue, still queued. */
  first(queue: WaiterQueue): LeaseWaiter | undefined {
    return queue.waiters.values().next().value;
  }

  /** Rejects and removes every waiter (pool closing). */
  rejectAll(error: () => PoolError): void {
    for (const queue of [...this.queues.values()]) {
      for (const waiter of [...queue.waiters.values()]) {
        if (this.take(waiter)) waiter.reject(error());
      }
    }
  }
}
