/**
 * A binary min-heap whose nodes know their position, so that any node can be removed or
 * re-prioritised in O(log n). Each node has a numeric priority, kept in a Float64Array beside
 * the node array: most comparisons then read one typed-array slot instead of chasing pointers,
 * which is what keeps a 100,000-key heap fast. Equal priorities fall back to `tieBefore`.
 * Nodes carry their own `heapPos` (-1 when in no heap): a node is in at most one heap at a time.
 */
export interface HeapNode {
  heapPos: number;
}

export class IndexedHeap<N extends HeapNode> {
  private items: N[] = [];
  private prio = new Float64Array(16);

  /** `tieBefore(a, b)`: for equal priorities, whether a comes out before b. */
  constructor(private readonly tieBefore: (a: N, b: N) => boolean = () => false) {}

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
      const grown = new Float64Array(pos * 2);
      grown.set(this.prio);
      this.prio = grown;
    }
    this.items.push(node);
    this.up(pos, node, priority);
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

  /** Gives `node` a new priority (or re-checks its tie order) and restores heap order. */
  update(node: N, priority: number): void {
    if (!this.has(node)) return;
    const pos = node.heapPos;
    const old = this.prio[pos];
    if (priority < old) this.up(pos, node, priority);
    else if (priority > old) this.down(pos, node, priority);
    else {
      this.up(pos, node, priority);
      this.down(node.heapPos, node, priority);
    }
  }

  private before(pa: number, a: N, pb: number, b: N): boolean {
    return pa < pb || (pa === pb && this.tieBefore(a, b));
  }

  private removeAt(pos: number): void {
    const items = this.items;
    const node = items[pos];
    const last = items.pop()!;
    const lastPrio = this.prio[items.length];
    node.heapPos = -1;
    if (pos < items.length) {
      this.up(pos, last, lastPrio);
      if (last.heapPos === pos) this.down(pos, last, lastPrio);
    }
  }

  /** Places `node` with `p` at `pos` or above. */
  private up(pos: number, node: N, p: number): void {
    const items = this.items;
    const prio = this.prio;
    while (pos > 0) {
      const parentPos = (pos - 1) >> 1;
      const parent = items[parentPos];
      const pp = prio[parentPos];
      if (!this.before(p, node, pp, parent)) break;
      items[pos] = parent;
      prio[pos] = pp;
      parent.heapPos = pos;
      pos = parentPos;
    }
    items[pos] = node;
    prio[pos] = p;
    node.heapPos = pos;
  }

  /** Places `node` with `p` at `pos` or below. */
  private down(pos: number, node: N, p: number): void {
    const items = this.items;
    const prio = this.prio;
    const n = items.length;
    for (;;) {
      const left = 2 * pos + 1;
      if (left >= n) break;
      const right = left + 1;
      let child = left;
      if (right < n && this.before(prio[right], items[right], prio[left], items[left])) child = right;
      if (!this.before(prio[child], items[child], p, node)) break;
      items[pos] = items[child];
      prio[pos] = prio[child];
      items[pos].heapPos = pos;
      pos = child;
    }
    items[pos] = node;
    prio[pos] = p;
    node.heapPos = pos;
  }
}
