/**
 * A binary min-heap whose nodes know their position, so that any node can be removed or
 * re-positioned in O(log n). Nodes carry their own `heapPos` (-1 when in no heap) instead of a
 * side map: a node belongs to at most one heap at a time, and this keeps the hot path free of
 * hashing.
 */
export interface HeapNode {
  heapPos: number;
}

export class IndexedHeap<N extends HeapNode> {
  private readonly items: N[] = [];

  /** `before(a, b)`: a must come out before b. It must be a strict total order for determinism. */
  constructor(private readonly before: (a: N, b: N) => boolean) {}

  get size(): number {
    return this.items.length;
  }

  peek(): N | undefined {
    return this.items[0];
  }

  has(node: N): boolean {
    return node.heapPos >= 0 && this.items[node.heapPos] === node;
  }

  push(node: N): void {
    node.heapPos = this.items.length;
    this.items.push(node);
    this.up(node.heapPos);
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

  /** Restores order after `node`'s sort key changed. */
  update(node: N): void {
    if (!this.has(node)) return;
    this.up(node.heapPos);
    this.down(node.heapPos);
  }

  /** Every node, in no particular order. */
  values(): readonly N[] {
    return this.items;
  }

  private removeAt(pos: number): void {
    const items = this.items;
    const node = items[pos];
    const last = items.pop()!;
    node.heapPos = -1;
    if (pos < items.length) {
      items[pos] = last;
      last.heapPos = pos;
      this.up(pos);
      this.down(last.heapPos);
    }
  }

  private up(pos: number): void {
    const items = this.items;
    const node = items[pos];
    while (pos > 0) {
      const parentPos = (pos - 1) >> 1;
      const parent = items[parentPos];
      if (!this.before(node, parent)) break;
      items[pos] = parent;
      parent.heapPos = pos;
      pos = parentPos;
    }
    items[pos] = node;
    node.heapPos = pos;
  }

  private down(pos: number): void {
    const items = this.items;
    const n = items.length;
    const node = items[pos];
    for (;;) {
      const left = 2 * pos + 1;
      if (left >= n) break;
      const right = left + 1;
      const child = right < n && this.before(items[right], items[left]) ? right : left;
      if (!this.before(items[child], node)) break;
      items[pos] = items[child];
      items[pos].heapPos = pos;
      pos = child;
    }
    items[pos] = node;
    node.heapPos = pos;
  }
}
