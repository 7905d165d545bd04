import { comesBefore, IndexedHeap, type HeapNode } from "./indexed-heap";

/** How far back from its end the run looks for a node's place before the node goes to the heap. */
const MAX_SHIFT = 32;
const INITIAL_CAPACITY = 16;

/**
 * A priority queue with IndexedHeap's order and operations, and `update`, for priorities that
 * mostly arrive in increasing order: a leased key becomes the most recently leased one, and a
 * held key's ready_at is now plus the same reuse delay as the key held before it. Such a node joins a sorted run (a
 * ring of slots, oldest first) at or near its end, and leaves it from its front, in O(1) and
 * without touching any other node; a node whose priority arrives out of order (a cooldown, a key
 * added with an old lease) goes to an IndexedHeap beside the run. The smaller of the run's front
 * and the heap's top comes out first, so the order is exactly the heap's: (priority, rank, tie).
 *
 * A heap moves a node from its top to its bottom through log4(n) levels, and at each level writes
 * the position of another node: in a 100,000-key pool, about eight cache misses per Lease per
 * family the key serves. The run writes none.
 *
 * A node in the run records its slot in `heapPos` as `-2 - slot`, so that -1 still means "in
 * neither" and a non-negative position still belongs to the heap. A removal leaves its slot empty;
 * the ends are trimmed at once, and the middle is compacted when the ring fills.
 */
export class InOrderQueue<N extends HeapNode> {
  private readonly heap: IndexedHeap<N>;
  /** Slots of the ring, [head, tail) as positions that count up (slot = position & mask). */
  private items: (N | undefined)[] = new Array<N | undefined>(INITIAL_CAPACITY).fill(undefined);
  private prio = new Float64Array(INITIAL_CAPACITY);
  private rank: Float64Array<ArrayBuffer> | null;
  private mask = INITIAL_CAPACITY - 1;
  private head = 0;
  private tail = 0;
  /** Nodes in the run (slots in [head, tail) that are not empty). */
  private inRun = 0;

  /** The same comparators as IndexedHeap's (see its constructor). */
  constructor(
    private readonly tieBefore: (a: N, b: N) => boolean = () => false,
    private readonly rankOf?: (node: N) => number,
  ) {
    this.heap = new IndexedHeap(tieBefore, rankOf);
    this.rank = rankOf ? new Float64Array(INITIAL_CAPACITY) : null;
  }

  get size(): number {
    return this.heap.size + this.inRun;
  }

  has(node: N): boolean {
    return this.heap.has(node) || this.runHas(node);
  }

  peek(): N | undefined {
    const top = this.heap.peek();
    if (this.inRun === 0) return top;
    const slot = this.head & this.mask;
    const front = this.items[slot]!;
    if (top === undefined) return front;
    const tp = this.heap.peekPriority();
    const fp = this.prio[slot];
    if (fp !== tp) return fp < tp ? front : top;
    const fr = this.rank ? this.rank[slot] : 0;
    const tr = this.rankOf ? this.rankOf(top) : 0;
    return this.before(fp, fr, front, tp, tr, top) ? front : top;
  }

  /** The priority of the first node (Infinity when empty). */
  peekPriority(): number {
    const tp = this.heap.peekPriority();
    if (this.inRun === 0) return tp;
    const fp = this.prio[this.head & this.mask];
    return fp < tp ? fp : tp;
  }

  push(node: N, priority: number): void {
    if (!this.append(node, priority, this.rankOf ? this.rankOf(node) : 0)) this.heap.push(node, priority);
  }

  pop(): N | undefined {
    const first = this.peek();
    if (first !== undefined) this.remove(first);
    return first;
  }

  /** Removes `node` if it is in this queue. */
  remove(node: N): boolean {
    if (this.heap.remove(node)) return true;
    if (!this.runHas(node)) return false;
    this.items[-2 - node.heapPos] = undefined;
    node.heapPos = -1;
    this.inRun--;
    this.trim();
    return true;
  }

  /** Gives `node` a new priority (or re-checks its tie order) and restores the order. */
  update(node: N, priority: number): void {
    if (this.remove(node)) this.push(node, priority);
  }

  private runHas(node: N): boolean {
    return node.heapPos <= -2 && this.items[-2 - node.heapPos] === node;
  }

  private before(pa: number, ra: number, a: N, pb: number, rb: number, b: N): boolean {
    return comesBefore(pa, ra, a, pb, rb, b, this.tieBefore);
  }

  /** Whether `node` (priority p, rank r) comes before the run's node in `slot`, which holds one. */
  private beforeSlot(p: number, r: number, node: N, slot: number): boolean {
    return this.before(p, r, node, this.prio[slot], this.rank ? this.rank[slot] : 0, this.items[slot]!);
  }

  /**
   * Puts the node into the run at its place, if that place is at the end or within MAX_SHIFT
   * slots of it; false when it is not (the node then goes to the heap).
   */
  private append(node: N, p: number, r: number): boolean {
    if (this.inRun === 0) {
      this.head = this.tail = 0;
      this.set(0, node, p, r);
      this.tail = 1;
      this.inRun = 1;
      return true;
    }
    // Where the node goes: after every node in the run that does not come after it. A node that
    // comes before the one MAX_SHIFT slots back (most nodes added at start, all at priority 0)
    // goes to the heap after one comparison.
    let at = this.tail;
    const stop = Math.max(this.head, this.tail - MAX_SHIFT);
    if (this.items[stop & this.mask] !== undefined && this.beforeSlot(p, r, node, stop & this.mask)) return false;
    for (;;) {
      const slot = (at - 1) & this.mask;
      if (this.items[slot] !== undefined && !this.beforeSlot(p, r, node, slot)) break;
      at--;
      if (at === this.head) return false; // before the whole run: only the heap can say where
      if (at === stop) return false;
    }
    if (this.tail - this.head > this.mask) {
      this.makeRoom();
      return this.append(node, p, r);
    }
    for (let from = this.tail - 1; from >= at; from--) {
      const moved = this.items[from & this.mask];
      const to = (from + 1) & this.mask;
      this.items[to] = moved;
      this.prio[to] = this.prio[from & this.mask];
      if (this.rank) this.rank[to] = this.rank[from & this.mask];
      if (moved !== undefined) moved.heapPos = -2 - to;
    }
    this.set(at & this.mask, node, p, r);
    this.tail++;
    this.inRun++;
    return true;
  }

  private set(slot: number, node: N, p: number, r: number): void {
    this.items[slot] = node;
    this.prio[slot] = p;
    if (this.rank) this.rank[slot] = r;
    node.heapPos = -2 - slot;
  }

  /** Moves the ends past empty slots, so that the run's first and last slots hold nodes. */
  private trim(): void {
    if (this.inRun === 0) {
      this.head = this.tail = 0;
      return;
    }
    while (this.items[this.head & this.mask] === undefined) this.head++;
    while (this.items[(this.tail - 1) & this.mask] === undefined) this.tail--;
    // Positions stay small integers: slots depend only on the low bits.
    if (this.head > this.mask) {
      const whole = this.head & ~this.mask;
      this.head -= whole;
      this.tail -= whole;
    }
  }

  /**
   * The ring is full: its nodes move, in order, to the front of a ring as large (when at most
   * half its slots hold nodes) or twice as large.
   */
  private makeRoom(): void {
    const capacity = this.mask + 1;
    const size = this.inRun * 2 <= capacity ? capacity : capacity * 2;
    const items = new Array<N | undefined>(size).fill(undefined);
    const prio = new Float64Array(size);
    const rank = this.rank ? new Float64Array(size) : null;
    let to = 0;
    for (let at = this.head; at < this.tail; at++) {
      const slot = at & this.mask;
      const node = this.items[slot];
      if (node === undefined) continue;
      items[to] = node;
      prio[to] = this.prio[slot];
      if (rank) rank[to] = this.rank![slot];
      node.heapPos = -2 - to;
      to++;
    }
    this.items = items;
    this.prio = prio;
    this.rank = rank;
    this.mask = size - 1;
    this.head = 0;
    this.tail = to;
  }
}
