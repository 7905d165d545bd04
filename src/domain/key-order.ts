/**
 * The pool's keys in key_hash order, for listings that page (ListKeys, WatchKeys snapshot
 * slices): a page starts after the last hash of the one before, so a key that stays in the pool
 * appears exactly once however keys come and go between pages. The order is rebuilt lazily, once
 * after any number of additions or removals, since those are rare next to reads and changes.
 */
export class KeyOrder {
  private sorted: string[] | null = null;

  constructor(private readonly hashes: () => Iterable<string>) {}

  /** The set of keys changed: the order is rebuilt on the next read. */
  invalidate(): void {
    this.sorted = null;
  }

  /**
   * The hashes as they stand, already in order (a replica's snapshot comes sorted): kept as they
   * are when they are, sorted otherwise, so that the first read sorts nothing.
   */
  adopt(hashes: string[]): void {
    for (let i = 1; i < hashes.length; i++) {
      if (hashes[i - 1]! >= hashes[i]!) {
        hashes.sort();
        break;
      }
    }
    this.sorted = hashes;
  }

  /** Every hash in order, starting with the first one greater than `after` ("" : from the start). */
  *from(after: string): Generator<string> {
    const sorted = (this.sorted ??= [...this.hashes()].sort());
    let lo = 0;
    let hi = sorted.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (sorted[mid]! <= after) lo = mid + 1;
      else hi = mid;
    }
    // A removal replaces the array, so this walk keeps reading the one it started on.
    for (let i = lo; i < sorted.length; i++) yield sorted[i]!;
  }
}
