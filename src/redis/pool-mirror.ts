/**
 * A replica's local read model of the pool kept in Redis: every key's status (never its secret),
 * fed by the change stream (change-follower.ts), with the same change feed and synchronous
 * reads that the watch hub, the key checker and the metrics census use over the in-memory pool.
 * It answers nothing that must be current across replicas on its own: RedisPool first waits until
 * the mirror has applied the stream up to the entry that was last when the call began (waitFor).
 *
 * Statuses are replaced on each change, never changed in place, so a reader may keep one, and the
 * views its change feed carries (src/domain/key-view.ts StatusView) are those statuses as they are.
 */
import { ChangeFeed } from "../domain/change-feed";
import type { Clock, Timer } from "../domain/clock";
import { ErrorCode, PoolError } from "../domain/errors";
import { keyMatches, type KeyFilter } from "../domain/key-filter";
import { KeyOrder } from "../domain/key-order";
import { StatusView } from "../domain/key-view";
import type { KeyStatus, KeyView, PoolEvent, ProviderId } from "../domain/types";

/** Reads waiting for the mirror to catch up, at most: each is a call in progress. */
const MAX_CATCH_UP_WAITERS = 10_000;

interface CatchUpWaiter {
  number: number;
  resolve: () => void;
  reject: (error: PoolError) => void;
  timer: Timer;
}

export class PoolMirror {
  readonly changes = new ChangeFeed<PoolEvent>();
  private readonly statuses = new Map<string, KeyStatus>();
  private readonly order = new KeyOrder(() => this.statuses.keys());
  private waiting: CatchUpWaiter[] = [];
  /** The number of the last stream entry applied. */
  private appliedNumber = 0;

  constructor(private readonly clock: Clock) {}

  get applied(): number {
    return this.appliedNumber;
  }

  get size(): number {
    return this.statuses.size;
  }

  /**
   * A snapshot replaces the whole model; differences are published as changes. `number` is the
   * stream entry the snapshot includes, and becomes the last one applied even if lower (Redis
   * lost the pool and began numbering again).
   */
  replaceAll(statuses: readonly KeyStatus[], number: number): void {
    if (this.statuses.size === 0) this.fill(statuses);
    else this.replaceDifferences(statuses);
    this.appliedNumber = number;
    this.appliedTo(number);
  }

  /**
   * Into an empty model (a replica opening): no differences to look for, and the order is the
   * snapshot's own (key_hash order), taken as it comes when it is one.
   */
  private fill(statuses: readonly KeyStatus[]): void {
    const hashes: string[] = new Array(statuses.length);
    for (let i = 0; i < statuses.length; i++) {
      const status = statuses[i]!;
      this.statuses.set(status.keyHash, status);
      hashes[i] = status.keyHash;
    }
    // A hash listed twice (never in a snapshot) would be listed twice: the order is rebuilt then.
    if (this.statuses.size === hashes.length) this.order.adopt(hashes);
    else this.order.invalidate();
    if (this.changes.size === 0) return;
    for (const status of this.statuses.values()) this.changes.publish({ type: "updated", cause: "restored", key: new StatusView(status) });
  }

  private replaceDifferences(statuses: readonly KeyStatus[]): void {
    const fresh = new Map<string, KeyStatus>();
    for (const status of statuses) fresh.set(status.keyHash, status);
    for (const [keyHash, old] of this.statuses) {
      if (!fresh.has(keyHash)) this.apply({ type: "removed", keyHash, provider: old.provider, modelFamilies: old.modelFamilies });
    }
    for (const [keyHash, status] of fresh) {
      const old = this.statuses.get(keyHash);
      if (!old || JSON.stringify(old) !== JSON.stringify(status)) this.apply({ type: "updated", cause: "restored", key: new StatusView(status) });
    }
  }

  /** Applies one change and publishes it. */
  apply(event: PoolEvent): void {
    if (event.type === "removed") {
      if (!this.statuses.delete(event.keyHash)) return;
      this.order.invalidate();
    } else {
      const status = event.key.status();
      if (!this.statuses.has(status.keyHash)) this.order.invalidate();
      this.statuses.set(status.keyHash, status);
    }
    this.changes.publish(event);
  }

  /** Every change up to stream entry `number` is applied: reads waiting for it go on. */
  appliedTo(number: number): void {
    this.appliedNumber = Math.max(this.appliedNumber, number);
    if (this.waiting.length === 0) return;
    const still: CatchUpWaiter[] = [];
    for (const w of this.waiting) {
      if (w.number <= this.appliedNumber) {
        w.timer.cancel();
        w.resolve();
      } else still.push(w);
    }
    this.waiting = still;
  }

  /** Resolves once entry `number` is applied; Unavailable after `timeoutMs` (the stream is not followed). */
  waitFor(number: number, timeoutMs: number): Promise<void> {
    if (number <= this.appliedNumber) return Promise.resolve();
    if (this.waiting.length >= MAX_CATCH_UP_WAITERS) {
      return Promise.reject(new PoolError(ErrorCode.Unavailable, "too many reads are waiting for this replica to follow the pool's changes"));
    }
    return new Promise((resolve, reject) => {
      const waiter: CatchUpWaiter = {
        number,
        resolve,
        reject,
        timer: this.clock.setTimer(timeoutMs, () => {
          this.waiting = this.waiting.filter((w) => w !== waiter);
          reject(new PoolError(ErrorCode.Unavailable, `this replica did not receive the pool's latest changes from Redis within ${timeoutMs} ms`));
        }),
      };
      this.waiting.push(waiter);
    });
  }

  /** Rejects the reads still waiting (closing). */
  close(): void {
    for (const w of this.waiting) {
      w.timer.cancel();
      w.reject(new PoolError(ErrorCode.Unavailable, "the key pool is shutting down"));
    }
    this.waiting = [];
  }

  listKeys(filter?: KeyFilter): KeyStatus[] {
    return [...this.keysAfter("", filter)];
  }

  *keysAfter(after: string, filter?: KeyFilter): Generator<KeyStatus> {
    for (const keyHash of this.order.from(after)) {
      const status = this.statuses.get(keyHash);
      if (status && (!filter || keyMatches(filter, status))) yield status;
    }
  }

  getKey(keyHash: string): KeyStatus | undefined {
    return this.statuses.get(keyHash);
  }

  /** Every key, as a view of its status (no copies), in no particular order. */
  *viewKeys(): Generator<KeyView> {
    for (const status of this.statuses.values()) yield new StatusView(status);
  }

  countByProvider(): Partial<Record<ProviderId, number>> {
    const counts: Partial<Record<ProviderId, number>> = {};
    for (const status of this.statuses.values()) counts[status.provider] = (counts[status.provider] ?? 0) + 1;
    return counts;
  }
}
