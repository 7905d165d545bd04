/** Slots a heap's arrays start with, and never shrink below. */
const MIN_CAPACITY = 16;

export interface HeapNode {
  heapPos: number;
}

/**
 * Whether a node of priority pa and rank ra comes out before one of pb and rb: the order of
 * IndexedHeap and of InOrderQueue, which must agree. `tieBefore` decides equal ranks.
 */
export function comesBefore<N>(pa: number, ra: number, a: N, pb: number, rb: number, b: N, tieBefore: (a: N, b: N) => boolean): boolean {
  if (pa !== pb) return pa < pb;
  if (ra < rb) return true;
  if (ra > rb) return false;
  return tieBefore(a, b);
}

/**
 * A 4-ary min-heap whose nodes know their position, so that any node can be removed in
 * O(log n). Each node has a numeric priority, kept in a Float64Array beside
 * the node array: most comparisons then read one typed-array slot instead of chasing pointers,
 * which is what keeps a 100,000-key heap fast. Equal priorities compare the nodes' ranks when the
 * heap has `rankOf` (a number per node that never changes, kept in a second Float64Array), and
 * fall back to `tieBefore` when the ranks are equal or not numbers: a heap whose nodes often share
 * a priority (keys never leased all have the same) then orders them without reading one node,
 * where each node read is a cache miss in a large heap.
 * Nodes carry their own `heapPos` (-1 when in no heap): a node is in at most one heap at a time.
 *
 * Four children per node rather than two: a node moving from the top to the bottom (the last
 * node, put in the place of the top one taken out) passes half as many levels, and each level it
 * passes writes the position of the node it swaps with, an object of its own and, in a large
 * heap, a cache miss; the four children's priorities it compares sit side by side in the typed array.
 */
export class IndexedHeap<N extends HeapNode> {
  private items: N[] = [];
  private prio = new Float64Array(MIN_CAPACITY);
  /** The nodes' ranks, by position, when the heap has `rankOf`. */
  private rank: Float64Array<ArrayBuffer> | null;

  /**
   * `tieBefore(a, b)`: for equal priorities (and ranks), whether a comes out before b. `rankOf`,
   * if given, must agree with tieBefore: a lower rank comes out first, and tieBefore decides only
   * between equal ranks or where a rank is NaN.
   */
  constructor(
    private readonly tieBefore: (a: N, b: N) => boolean = () => false,
    private readonly rankOf?: (node: N) => number,
  ) {
    this.rank = rankOf ? new Float64Array(MIN_CAPACITY) : null;
  }

  get size(): number {
    return this.items.length;
  }

  peek(): N | undefined {
    return this.items[0];
  }

  /** The priority of the top node (Infinity when empty). */
  peekPriority(): number {
    return this.items.length > 0 ? this.prio[0] : Infinity;
  }

  has(node: N): boolean {
    return node.heapPos >= 0 && this.items[node.heapPos] === node;
  }

  push(node: N, priority: number): void {
    const pos = this.items.length;
    if (pos === this.prio.length) {
      this.prio = resized(this.prio, this.prio.length * 2);
      if (this.rank) this.rank = resized(this.rank, this.rank.length * 2);
    }
    this.items.push(node);
    this.up(pos, node, priority, this.rankOf ? this.rankOf(node) : 0);
  }

  pop(): N | undefined {
    const top = this.items[0];
    if (top !== undefined) this.removeAt(0);
    return top;
  }

  /** Removes `node` if it is in this heap. */
  remove(node: N): boolean {
    if (!this.has(node)) return false;
    this.removeAt(node.heapPos);
    return true;
  }

  private before(pa: number, ra: number, a: N, pb: number, rb: number, b: N): boolean {
    return comesBefore(pa, ra, a, pb, rb, b, this.tieBefore);
  }

  private removeAt(pos: number): void {
    const items = this.items;
    const node = items[pos];
    const last = items.pop()!;
    const lastPrio = this.prio[items.length];
    const lastRank = this.rank ? this.rank[items.length] : 0;
    node.heapPos = -1;
    if (pos < items.length) {
      this.up(pos, last, lastPrio, lastRank);
      if (last.heapPos === pos) this.down(pos, last, lastPrio, lastRank);
    }
    // A heap that nodes leave for good (an InOrderQueue's, as keys are leased in turn) gives its
    // room back: a quarter full, its arrays halve.
    if (items.length < this.prio.length >> 2 && this.prio.length > MIN_CAPACITY) {
      this.prio = resized(this.prio, this.prio.length >> 1);
      if (this.rank) this.rank = resized(this.rank, this.rank.length >> 1);
    }
  }

  /** Places `node` with priority `p` and rank `r` at `pos` or above. */
  private up(pos: number, node: N, p: number, r: number): void {
    const items = this.items;
    const prio = this.prio;
    const rank = this.rank;
    while (pos > 0) {
      const parentPos = (pos - 1) >> 2;
      const parent = items[parentPos];
      const pp = prio[parentPos];
      const pr = rank ? rank[parentPos] : 0;
      if (!this.before(p, r, node, pp, pr, parent)) break;
      items[pos] = parent;
      prio[pos] = pp;
      if (rank) rank[pos] = pr;
      parent.heapPos = pos;
      pos = parentPos;
    }
    this.set(pos, node, p, r);
  }

  /** Places `node` with priority `p` and rank `r` at `pos` or below. */
  private down(pos: number, node: N, p: number, r: number): void {
    const items = this.items;
    const prio = this.prio;
    const rank = this.rank;
    const n = items.length;
    for (;;) {
      const first = 4 * pos + 1;
      if (first >= n) break;
      const last = Math.min(first + 4, n);
      let child = first;
      let cp = prio[first];
      let cr = rank ? rank[first] : 0;
      for (let c = first + 1; c < last; c++) {
        const q = prio[c];
        const qr = rank ? rank[c] : 0;
        if (this.before(q, qr, items[c], cp, cr, items[child])) {
          child = c;
          cp = q;
          cr = qr;
        }
      }
      if (!this.before(cp, cr, items[child], p, r, node)) break;
      const moved = items[child];
      items[pos] = moved;
      prio[pos] = cp;
      if (rank) rank[pos] = cr;
      moved.heapPos = pos;
      pos = child;
    }
    this.set(pos, node, p, r);
  }

  private set(pos: number, node: N, p: number, r: number): void {
    this.items[pos] = node;
    this.prio[pos] = p;
    if (this.rank) this.rank[pos] = r;
    node.heapPos = pos;
  }
}

/** A copy of `array`'s first `length` slots (or all of it, and room beside). */
function resized(array: Float64Array<ArrayBuffer>, length: number): Float64Array<ArrayBuffer> {
  const copy = new Float64Array(length);
  copy.set(length < array.length ? array.subarray(0, length) : array);
  return copy;
}
