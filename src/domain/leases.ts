import { randomFillSync } from "node:crypto";
import type { Clock, Timer } from "./clock";
import { IndexedHeap, type HeapNode } from "./indexed-heap";

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
 * "<seq in base 36>-<the 64 random bits, `hi` then `lo`, in 16 hex digits>", as toString(36) and
 * padded toString(16) would make it, but as one string: those make a string per part and per
 * padding, and the id is made on every Lease.
 */
export function leaseIdText(seq: number, hi: number, lo: number): string {
  let length = 1;
  for (let v = seq; v >= 36; v = Math.floor(v / 36)) length++;
  for (let i = length - 1, v = seq; i >= 0; i--, v = Math.floor(v / 36)) ID_TEXT[i] = DIGITS[v % 36];
  ID_TEXT[length] = 0x2d; // "-"
  const end = writeHex(lo, 8, writeHex(hi, 8, length + 1));
  return ID_TEXT.toString("latin1", 0, end);
}

/** A lease whose expiry came before an earlier lease's (the clock went back): it expires through a heap of its own. */
interface LateLease extends HeapNode {
  readonly seq: number;
}

/** Open leases a new book has room for before its columns grow (a power of two). */
const INITIAL_CAPACITY = 1024;

/**
 * Open leases, by id, and their expiry. An id is a sequence number (unique in this process) and
 * 64 random bits (so ids cannot be guessed). One clock timer covers them all (set for the earliest
 * expiry), so a million open leases cost one timer, not a million.
 *
 * A lease lives until it ends or expires (minutes, and a proxy that never ends its leases leaves
 * every one to its TTL), so it is no object of its own: the book keeps columns (its owner, its
 * expiry, its random bits) in a ring indexed by sequence number, from the oldest lease not yet
 * over to the newest, about 25 bytes a lease and nothing for the collector to copy while it waits.
 * Every lease gets the same TTL, so expiries come in the order of sequence numbers and the oldest
 * expires first; a lease opened after the clock went back, which would expire before leases
 * opened earlier, is kept in a small heap besides the ring.
 */
export class LeaseBook<O> {
  /** Sequence numbers of the ring: [first, next) are slots not yet reclaimed; `next` is the next id's. */
  private first = 1;
  private next = 1;
  private mask = INITIAL_CAPACITY - 1;
  /** By slot (seq & mask): the owner while the lease is open, undefined once it ended or expired. */
  private owners: (O | undefined)[] = new Array<O | undefined>(INITIAL_CAPACITY).fill(undefined);
  private expiry = new Float64Array(INITIAL_CAPACITY);
  /** The id's 64 random bits, two 32-bit halves per slot. */
  private bits = new Uint32Array(2 * INITIAL_CAPACITY);
  /** 1 where the lease expires through `late` rather than in ring order. */
  private isLate = new Uint8Array(INITIAL_CAPACITY);
  private readonly late = new IndexedHeap<LateLease>();
  private readonly lateBySeq = new Map<number, LateLease>();
  /** The latest expiry of a lease in ring order: a lease expiring before it is late. */
  private lastExpiry = -Infinity;
  private openCount = 0;
  /** Random bytes for ids, refilled 4 KiB at a time. */
  private random = Buffer.alloc(0);
  private randomAt = 0;
  private timer: Timer | undefined;
  private timerAt = Infinity;
  private closed = false;

  constructor(
    private readonly clock: Clock,
    /** Called with the owner of each lease that expires, after it left the book. */
    private readonly onExpire: (owner: O) => void,
  ) {}

  get size(): number {
    return this.openCount;
  }

  /** Opens a lease on `owner` until `expiresAt`; returns its sequence number (see idOf). */
  open(owner: O, expiresAt: number): number {
    if (this.next - this.first > this.mask) this.grow();
    const seq = this.next++;
    const slot = seq & this.mask;
    if (this.randomAt + 8 > this.random.length) {
      this.random = randomFillSync(Buffer.alloc(4096));
      this.randomAt = 0;
    }
    this.bits[2 * slot] = this.random.readUInt32BE(this.randomAt);
    this.bits[2 * slot + 1] = this.random.readUInt32BE(this.randomAt + 4);
    this.randomAt += 8;
    this.owners[slot] = owner;
    this.expiry[slot] = expiresAt;
    this.openCount++;
    if (expiresAt >= this.lastExpiry) {
      this.lastExpiry = expiresAt;
      this.isLate[slot] = 0;
    } else {
      this.isLate[slot] = 1;
      const late = { seq, heapPos: -1 };
      this.late.push(late, expiresAt);
      this.lateBySeq.set(seq, late);
    }
    if (expiresAt < this.timerAt) this.schedule();
    return seq;
  }

  /** The id of the lease `seq`: "<sequence number in base 36>-<16 random hex digits>". */
  idOf(seq: number): string {
    const slot = seq & this.mask;
    return leaseIdText(seq, this.bits[2 * slot], this.bits[2 * slot + 1]);
  }

  /** The owner of the open lease `id`; undefined when it is unknown or already over. */
  ownerOf(id: string): O | undefined {
    const seq = this.openSeq(id);
    return seq < 0 ? undefined : this.owners[seq & this.mask];
  }

  /** Ends a lease early; returns its owner, or undefined when it is unknown or already over. */
  end(id: string): O | undefined {
    const seq = this.openSeq(id);
    if (seq < 0) return undefined;
    const owner = this.release(seq);
    this.reclaim();
    return owner;
  }

  close(): void {
    this.closed = true;
    this.timer?.cancel();
    this.timer = undefined;
    this.timerAt = Infinity;
  }

  /** The sequence number of the open lease `id`, or -1. */
  private openSeq(id: string): number {
    const seq = seqOf(id);
    if (seq < this.first || seq >= this.next) return -1;
    if (this.owners[seq & this.mask] === undefined || this.idOf(seq) !== id) return -1;
    return seq;
  }

  /** Takes an open lease out of the book; returns its owner. */
  private release(seq: number): O {
    const slot = seq & this.mask;
    const owner = this.owners[slot]!;
    this.owners[slot] = undefined;
    this.openCount--;
    if (this.isLate[slot]) {
      this.isLate[slot] = 0;
      this.late.remove(this.lateBySeq.get(seq)!);
      this.lateBySeq.delete(seq);
    }
    return owner;
  }

  /**
   * Moves `first` past the slots of leases that are over. A ring three quarters empty gives
   * half its room back, so that a burst of leases leaves no large ring behind once they are over.
   */
  private reclaim(): void {
    while (this.first < this.next && this.owners[this.first & this.mask] === undefined) this.first++;
    if (this.first === this.next) this.lastExpiry = -Infinity;
    const capacity = this.mask + 1;
    if (capacity > INITIAL_CAPACITY && this.next - this.first <= capacity / 4) this.resize(capacity / 2);
  }

  private grow(): void {
    this.resize(2 * (this.mask + 1));
  }

  /** Columns of `capacity` slots (a power of two, at least the leases in the ring), each lease in its slot there. */
  private resize(capacity: number): void {
    const mask = capacity - 1;
    const owners = new Array<O | undefined>(capacity).fill(undefined);
    const expiry = new Float64Array(capacity);
    const bits = new Uint32Array(2 * capacity);
    const isLate = new Uint8Array(capacity);
    for (let seq = this.first; seq < this.next; seq++) {
      const from = seq & this.mask;
      const to = seq & mask;
      owners[to] = this.owners[from];
      expiry[to] = this.expiry[from];
      bits[2 * to] = this.bits[2 * from];
      bits[2 * to + 1] = this.bits[2 * from + 1];
      isLate[to] = this.isLate[from];
    }
    this.owners = owners;
    this.expiry = expiry;
    this.bits = bits;
    this.isLate = isLate;
    this.mask = mask;
  }

  /** The earliest expiry of an open lease: the oldest in ring order, or a late one. */
  private earliestExpiry(): number {
    let earliest = this.late.peekPriority();
    for (let seq = this.first; seq < this.next; seq++) {
      const slot = seq & this.mask;
      if (this.owners[slot] === undefined || this.isLate[slot]) continue;
      // Leases in ring order expire in that order: the first open one is the earliest.
      earliest = Math.min(earliest, this.expiry[slot]);
      break;
    }
    return earliest;
  }

  private schedule(): void {
    this.timer?.cancel();
    this.timer = undefined;
    this.timerAt = Infinity;
    const next = this.earliestExpiry();
    if (next === Infinity || this.closed) return;
    this.timerAt = next;
    this.timer = this.clock.setTimer(next - this.clock.now(), () => this.expireDue());
  }

  private expireDue(): void {
    this.timer = undefined;
    this.timerAt = Infinity;
    const now = this.clock.now();
    const due: O[] = [];
    while (this.late.peekPriority() <= now) due.push(this.release(this.late.peek()!.seq));
    for (let seq = this.first; seq < this.next; seq++) {
      const slot = seq & this.mask;
      if (this.owners[slot] === undefined || this.isLate[slot]) continue;
      if (this.expiry[slot] > now) break;
      due.push(this.release(seq));
    }
    this.reclaim();
    for (const owner of due) this.onExpire(owner);
    this.schedule();
  }
}
