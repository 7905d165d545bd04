import { randomFillSync } from "node:crypto";
import type { Clock, Timer } from "./clock";
import { IndexedHeap, type HeapNode } from "./indexed-heap";

/**
 * An open lease. It lives until it ends or expires (minutes, and a proxy that never ends its
 * leases leaves every one to its TTL), so it is kept as one object of small integers and a
 * pointer: its id's text is made when asked for (LeaseBook.idOf), and its expiry is the expiry
 * heap's priority. Anything more per lease would be more objects for the collector to copy while
 * the lease waits.
 */
export interface OpenLease<O> extends HeapNode {
  /** What the lease is on (the pool's key entry): a key removed or replaced no longer matches. */
  readonly owner: O;
  /** The id's sequence number. */
  readonly seq: number;
  /** The id's 64 random bits: 24, 24 and 16 of them. */
  readonly r0: number;
  readonly r1: number;
  readonly r2: number;
}

/** The sequence number in a lease id ("<seq base 36>-<16 random hex>"), or -1. */
function seqOf(id: string): number {
  if (typeof id !== "string") return -1;
  const dash = id.indexOf("-");
  if (dash <= 0 || dash > 11) return -1;
  const seq = parseInt(id.slice(0, dash), 36);
  return Number.isSafeInteger(seq) ? seq : -1;
}

/** Digits of base 36 (hex is its first 16), as character codes. */
const DIGITS = Buffer.from("0123456789abcdefghijklmnopqrstuvwxyz", "latin1");

/** Where an id's characters are put together: 11 base-36 digits of a sequence number up to 2^53, "-", 16 hex digits. */
const ID_TEXT = Buffer.alloc(28);

/** `value` in `digits` lower-case hex digits into ID_TEXT at `at`; returns the end. */
function writeHex(value: number, digits: number, at: number): number {
  for (let i = digits - 1; i >= 0; i--) {
    ID_TEXT[at + i] = DIGITS[value & 15];
    value >>>= 4;
  }
  return at + digits;
}

/**
 * "<seq in base 36>-<r0, r1, r2 in 6, 6 and 4 hex digits>", as the template string of toString(36)
 * and padded toString(16) would make it, but as one string: those make a string per part and per
 * padding, and the id is made on every Lease.
 */
export function leaseIdText(seq: number, r0: number, r1: number, r2: number): string {
  let length = 1;
  for (let v = seq; v >= 36; v = Math.floor(v / 36)) length++;
  for (let i = length - 1, v = seq; i >= 0; i--, v = Math.floor(v / 36)) ID_TEXT[i] = DIGITS[v % 36];
  ID_TEXT[length] = 0x2d; // "-"
  const end = writeHex(r2, 4, writeHex(r1, 6, writeHex(r0, 6, length + 1)));
  return ID_TEXT.toString("latin1", 0, end);
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
  /** Random bytes for ids, refilled 4 KiB at a time. */
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
    if (this.randomAt + 8 > this.random.length) {
      this.random = randomFillSync(Buffer.alloc(4096));
      this.randomAt = 0;
    }
    const at = this.randomAt;
    this.randomAt += 8;
    const b = this.random;
    // Big-endian, as the id's hex shows them; read by hand (Buffer.readUIntBE checks its arguments on every call).
    const lease: OpenLease<O> = {
      owner,
      seq,
      r0: (b[at] << 16) | (b[at + 1] << 8) | b[at + 2],
      r1: (b[at + 3] << 16) | (b[at + 4] << 8) | b[at + 5],
      r2: (b[at + 6] << 8) | b[at + 7],
      heapPos: -1,
    };
    this.byId.set(seq, lease);
    this.byExpiry.push(lease, expiresAt);
    if (expiresAt < this.timerAt) this.schedule();
    return lease;
  }

  /** The lease's id: "<sequence number in base 36>-<16 random hex digits>". */
  idOf(lease: OpenLease<O>): string {
    return leaseIdText(lease.seq, lease.r0, lease.r1, lease.r2);
  }

  get(id: string): OpenLease<O> | undefined {
    const lease = this.byId.get(seqOf(id));
    return lease !== undefined && this.idOf(lease) === id ? lease : undefined;
  }

  /** Ends a lease early; undefined when it is unknown or already over. */
  end(id: string): OpenLease<O> | undefined {
    const lease = this.get(id);
    if (!lease) return undefined;
    this.byId.delete(lease.seq);
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
    const next = this.byExpiry.peekPriority();
    if (next === Infinity || this.closed) return;
    this.timerAt = next;
    this.timer = this.clock.setTimer(next - this.clock.now(), () => this.expireDue());
  }

  private expireDue(): void {
    this.timer = undefined;
    this.timerAt = Infinity;
    const now = this.clock.now();
    while (this.byExpiry.peekPriority() <= now) {
      const top = this.byExpiry.pop()!;
      this.byId.delete(top.seq);
      this.onExpire(top);
    }
    this.schedule();
  }
}
