import { randomFillSync } from "node:crypto";
import type { Clock, Timer } from "./clock";
import { IndexedHeap, type HeapNode } from "./indexed-heap";

export interface OpenLease<O> extends HeapNode {
  readonly id: string;
  /** What the lease is on (the pool's key entry): a key removed or replaced no longer matches. */
  readonly owner: O;
  readonly expiresAt: number;
}

/** The sequence number in a lease id ("<seq base 36>-<16 random hex>"), or -1. */
function seqOf(id: string): number {
  if (typeof id !== "string") return -1;
  const dash = id.indexOf("-");
  if (dash <= 0 || dash > 11) return -1;
  const seq = parseInt(id.slice(0, dash), 36);
  return Number.isSafeInteger(seq) ? seq : -1;
}

/**
 * Open leases, by id, and their expiry. An id is a sequence number (unique in this process) and
 * 64 random bits (so ids cannot be guessed). One clock timer covers them all (set for the earliest
 * expiry), so a million open leases cost one timer, not a million.
 */
export class LeaseBook<O> {
  // Keyed by the id's sequence number: numbers hash and compare far cheaper than id strings.
  private readonly byId = new Map<number, OpenLease<O>>();
  private seq = 0;
  private random = Buffer.alloc(0);
  private randomAt = 0;
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
    const seq = ++this.seq;
    const lease: OpenLease<O> = { id: `${seq.toString(36)}-${this.randomHex()}`, owner, expiresAt, heapPos: -1 };
    this.byId.set(seq, lease);
    this.byExpiry.push(lease, expiresAt);
    if (expiresAt < this.timerAt) this.schedule();
    return lease;
  }

  get(id: string): OpenLease<O> | undefined {
    const lease = this.byId.get(seqOf(id));
    return lease !== undefined && lease.id === id ? lease : undefined;
  }

  /** Ends a lease early; undefined when it is unknown or already over. */
  end(id: string): OpenLease<O> | undefined {
    const lease = this.get(id);
    if (!lease) return undefined;
    this.byId.delete(seqOf(id));
    this.byExpiry.remove(lease);
    return lease;
  }

  close(): void {
    this.closed = true;
    this.timer?.cancel();
    this.timer = undefined;
    this.timerAt = Infinity;
  }

  /** 16 random hex digits (64 bits), from a buffer refilled 4 KiB at a time. */
  private randomHex(): string {
    if (this.randomAt + 8 > this.random.length) {
      this.random = randomFillSync(Buffer.alloc(4096));
      this.randomAt = 0;
    }
    const hex = this.random.toString("hex", this.randomAt, this.randomAt + 8);
    this.randomAt += 8;
    return hex;
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
      this.byId.delete(seqOf(top.id));
      this.onExpire(top);
    }
    this.schedule();
  }
}
