import { randomUUID } from "node:crypto";
import type { Clock, Timer } from "./clock";
import { IndexedHeap, type HeapNode } from "./indexed-heap";

export interface OpenLease<O> extends HeapNode {
  readonly id: string;
  /** What the lease is on (the pool's key entry): a key removed or replaced no longer matches. */
  readonly owner: O;
  readonly expiresAt: number;
}

/**
 * Open leases, by id, and their expiry. One clock timer covers them all (set for the earliest
 * expiry), so a million open leases cost one timer, not a million.
 */
export class LeaseBook<O> {
  private readonly byId = new Map<string, OpenLease<O>>();
  private readonly byExpiry = new IndexedHeap<OpenLease<O>>();
  private timer: Timer | undefined;
  private timerAt = Infinity;
  private closed = false;

  constructor(
    private readonly clock: Clock,
    /** Called for each lease that expires, after it left the book. */
    private readonly onExpire: (lease: OpenLease<O>) => void,
  ) {}

  get size(): number {
    return this.byId.size;
  }

  open(owner: O, expiresAt: number): OpenLease<O> {
    const lease: OpenLease<O> = { id: randomUUID(), owner, expiresAt, heapPos: -1 };
    this.byId.set(lease.id, lease);
    this.byExpiry.push(lease, expiresAt);
    if (expiresAt < this.timerAt) this.schedule();
    return lease;
  }

  get(id: string): OpenLease<O> | undefined {
    return this.byId.get(id);
  }

  /** Ends a lease early; undefined when it is unknown or already over. */
  end(id: string): OpenLease<O> | undefined {
    const lease = this.byId.get(id);
    if (!lease) return undefined;
    this.byId.delete(id);
    this.byExpiry.remove(lease);
    return lease;
  }

  close(): void {
    this.closed = true;
    this.timer?.cancel();
    this.timer = undefined;
    this.timerAt = Infinity;
  }

  private schedule(): void {
    this.timer?.cancel();
    this.timer = undefined;
    this.timerAt = Infinity;
    const next = this.byExpiry.peek();
    if (!next || this.closed) return;
    this.timerAt = next.expiresAt;
    this.timer = this.clock.setTimer(next.expiresAt - this.clock.now(), () => this.expireDue());
  }

  private expireDue(): void {
    this.timer = undefined;
    this.timerAt = Infinity;
    const now = this.clock.now();
    while (this.byExpiry.peekPriority() <= now) {
      const top = this.byExpiry.pop()!;
      this.byId.delete(top.id);
      this.onExpire(top);
    }
    this.schedule();
  }
}
