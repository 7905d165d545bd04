/**
 * The Lease calls waiting on this replica (max_wait > 0), first come first served per family.
 * Only this replica's own waiters live here: the pool is in Redis. A waiting queue tries to lease
 * again when something may have freed a key, which the replica learns without polling:
 * - a change on any replica reaches every replica through the change stream (wake());
 * - a key that simply becomes ready (its hold or cooldown runs out) changes nothing in Redis, so
 *   the replica keeps one timer for the earliest lockout its failed attempts reported.
 * Across replicas, each wake-up gives the first waiter of each replica one attempt, so waiters on
 * different replicas are served within one wake-up of each other.
 */
import type { Clock, Timer } from "../domain/clock";
import { ErrorCode, PoolError } from "../domain/errors";
import type { Lease } from "../domain/types";
import { queueId, type WaitTarget } from "../domain/waiters";

/** What one attempt to lease for a target found. */
export type LeaseAttempt =
  | { kind: "granted"; lease: Lease }
  | { kind: "busy"; lockoutMs: number; error: PoolError }
  | { kind: "nokeys"; error: PoolError };

export interface WaiterHooks {
  /** One lease attempt (one script) for the target. */
  attempt(target: WaitTarget): Promise<LeaseAttempt>;
  /** A key was granted to a waiter that left meanwhile: the lease is ended at once. */
  release(lease: Lease): void;
  /** An attempt failed (Redis away); the waiters stay and are tried again later. */
  onFailure(error: unknown): void;
}

interface Waiter {
  readonly id: number;
  readonly target: WaitTarget;
  readonly resolve: (lease: Lease) => void;
  readonly reject: (error: PoolError) => void;
  cleanup: () => void;
}

interface Queue {
  readonly target: WaitTarget;
  readonly waiters: Map<number, Waiter>;
}

/** The wait before trying again after an attempt failed (Redis away). */
const RETRY_AFTER_FAILURE_MS = 500;

export class ReplicaWaiters {
  private readonly queues = new Map<string, Queue>();
  private total = 0;
  private nextId = 1;
  private serving = false;
  private again = false;
  private timer: Timer | undefined;
  private timerAt = Infinity;
  private closed = false;

  constructor(
    private readonly clock: Clock,
    private readonly hooks: WaiterHooks,
  ) {}

  get size(): number {
    return this.total;
  }

  lengthOf(target: WaitTarget): number {
    return this.queues.get(queueId(target))?.waiters.size ?? 0;
  }

  /** Queues a lease request that gives up after `maxWaitMs` or when `signal` aborts. */
  wait(target: WaitTarget, maxWaitMs: number, signal?: AbortSignal): Promise<Lease> {
    const id = queueId(target);
    let queue = this.queues.get(id);
    if (!queue) this.queues.set(id, (queue = { target, waiters: new Map() }));
    const q = queue;
    const promise = new Promise<Lease>((resolve, reject) => {
      const waiter: Waiter = { id: this.nextId++, target, resolve, reject, cleanup: () => {} };
      const onAbort = () => {
        if (this.take(q, waiter)) waiter.reject(new PoolError(ErrorCode.Cancelled, "the lease request was cancelled while waiting for a key"));
      };
      const deadline = this.clock.setTimer(maxWaitMs, () => {
        if (this.take(q, waiter)) this.lastTry(waiter);
      });
      waiter.cleanup = () => {
        deadline.cancel();
        signal?.removeEventListener("abort", onAbort);
      };
      q.waiters.set(waiter.id, waiter);
      this.total++;
      signal?.addEventListener("abort", onAbort, { once: true });
    });
    this.wake();
    return promise;
  }

  /** Something changed in the pool: the queues try again. */
  wake(): void {
    if (this.total === 0 || this.closed) return;
    if (this.serving) {
      this.again = true;
      return;
    }
    void this.serveAll();
  }

  /** Rejects every waiter with Unavailable and stops the timer. */
  close(): void {
    this.closed = true;
    this.timer?.cancel();
    this.timer = undefined;
    for (const q of [...this.queues.values()]) {
      for (const w of [...q.waiters.values()]) {
        if (this.take(q, w)) w.reject(new PoolError(ErrorCode.Unavailable, "the key pool is shutting down"));
      }
    }
  }

  private async serveAll(): Promise<void> {
    this.serving = true;
    try {
      do {
        this.again = false;
        for (const queue of [...this.queues.values()]) await this.serve(queue);
      } while (this.again && !this.closed);
    } finally {
      this.serving = false;
    }
  }

  /** Hands keys to the queue's waiters in order until none is ready. */
  private async serve(queue: Queue): Promise<void> {
    while (!this.closed && queue.waiters.size > 0) {
      let attempt: LeaseAttempt;
      try {
        attempt = await this.hooks.attempt(queue.target);
      } catch (error) {
        this.hooks.onFailure(error);
        this.planWake(RETRY_AFTER_FAILURE_MS);
        return;
      }
      if (attempt.kind === "granted") {
        // The first waiter still here gets it (the one that was first may have left meanwhile).
        const waiter = queue.waiters.values().next().value as Waiter | undefined;
        if (waiter && this.take(queue, waiter)) waiter.resolve(attempt.lease);
        else this.hooks.release(attempt.lease);
        continue;
      }
      if (attempt.kind === "nokeys") {
        for (const w of [...queue.waiters.values()]) if (this.take(queue, w)) w.reject(attempt.error);
        return;
      }
      this.planWake(attempt.lockoutMs);
      return;
    }
  }

  /** The deadline came: one more attempt, then the waiter gets its key or the busy error. */
  private lastTry(waiter: Waiter): void {
    this.hooks.attempt(waiter.target).then(
      (attempt) => {
        if (attempt.kind === "granted") waiter.resolve(attempt.lease);
        else waiter.reject(attempt.error);
      },
      (error: unknown) => waiter.reject(error instanceof PoolError ? error : new PoolError(ErrorCode.Unavailable, "the pool's Redis did not answer")),
    );
  }

  private take(queue: Queue, waiter: Waiter): boolean {
    if (!queue.waiters.delete(waiter.id)) return false;
    this.total--;
    waiter.cleanup();
    if (queue.waiters.size === 0 && this.queues.get(queueId(queue.target)) === queue) this.queues.delete(queueId(queue.target));
    return true;
  }

  /** One timer, for the earliest time a waiting queue may find a key. */
  private planWake(delayMs: number): void {
    if (this.closed) return;
    const at = this.clock.now() + Math.max(0, delayMs);
    if (at >= this.timerAt) return;
    this.timer?.cancel();
    this.timerAt = at;
    this.timer = this.clock.setTimer(Math.max(0, delayMs), () => {
      this.timer = undefined;
      this.timerAt = Infinity;
      this.wake();
    });
  }
}
