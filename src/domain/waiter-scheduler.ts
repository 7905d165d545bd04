import type { Clock, Timer } from "./clock";
import type { PoolError } from "./errors";
import type { KeyEntry } from "./key-entry";
import type { SelectionIndex } from "./selection-index";
import type { Lease } from "./types";
import { WaiterQueues, type LeaseWaiter, type WaiterQueue, type WaitTarget } from "./waiters";

/** What the scheduler asks of the pool. */
export interface SchedulerHooks {
  /** Leases the key to a waiter (the same grant as Lease's). */
  grant(entry: KeyEntry, target: WaitTarget, now: number): Lease;
  /** The error for a family no ACTIVE key serves anymore. */
  noKeys(target: WaitTarget): PoolError;
  /** The error for a waiter whose deadline came before a key was ready. */
  busy(target: WaitTarget, now: number): PoolError;
}

/**
 * When waiting leases get their keys: queued requests are served first come, first served per
 * family as keys become ready, with one clock timer set for the earliest ready_at any queue is
 * waiting for. A queue whose family loses its last ACTIVE key fails at once.
 */
export class WaiterScheduler {
  readonly queues: WaiterQueues;
  private wakeTimer: Timer | undefined;
  private wakeAt = Infinity;
  private closed = false;

  constructor(
    private readonly clock: Clock,
    private readonly index: SelectionIndex<KeyEntry>,
    private readonly hooks: SchedulerHooks,
  ) {
    this.queues = new WaiterQueues(clock, {
      onDeadline: (waiter) => this.onDeadline(waiter),
      onLeave: () => this.planWake(),
    });
  }

  /** Serves waiting leases whose keys are ready, then plans the next wake-up. */
  serveAll(): void {
    if (this.queues.size === 0) return this.planWake();
    const now = this.clock.now();
    for (const queue of this.queues.active()) this.serve(queue, now);
    this.planWake();
  }

  /** Hands ready keys to a queue's waiters in order; fails them all if no key serves them anymore. */
  serve(queue: WaiterQueue | undefined, now: number): void {
    if (!queue) return;
    const { provider, family, embedding } = queue.target;
    for (let waiter = this.queues.first(queue); waiter; waiter = this.queues.first(queue)) {
      const entry = this.index.pick(provider, family, embedding, now);
      if (!entry) {
        if (this.index.lockout(provider, family, embedding, now).noActiveKeys) {
          const error = this.hooks.noKeys(queue.target);
          for (const w of [...queue.waiters.values()]) if (this.queues.take(w)) w.reject(error);
        }
        return;
      }
      this.queues.take(waiter);
      waiter.resolve(this.hooks.grant(entry, queue.target, now));
    }
  }

  /** Queues a lease request; call after serving its queue found no key. */
  wait(target: WaitTarget, maxWaitMs: number, signal?: AbortSignal): Promise<Lease> {
    const promise = this.queues.wait(target, maxWaitMs, signal);
    this.planWake();
    return promise;
  }

  /** Stops the timer; the caller rejects the waiters. */
  close(): void {
    this.closed = true;
    this.wakeTimer?.cancel();
    this.wakeTimer = undefined;
    this.wakeAt = Infinity;
  }

  private onDeadline(waiter: LeaseWaiter): void {
    const now = this.clock.now();
    this.serve(waiter.queue, now);
    if (this.queues.take(waiter)) waiter.reject(this.hooks.busy(waiter.queue.target, now));
    this.planWake();
  }

  /** One clock timer for the earliest ready_at that a waiter is waiting for. */
  private planWake(): void {
    let at = Infinity;
    if (!this.closed && this.queues.size > 0) {
      const now = this.clock.now();
      for (const queue of this.queues.active()) {
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
        this.serveAll();
      });
    }
  }
}
