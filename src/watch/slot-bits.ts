/**
 * Most members a set keeps as a sorted list (16 KiB) before it becomes a bitmap, whatever the
 * slots: inserting into the list moves at most this many entries.
 */
export const MAX_LIST_MEMBERS = 4096;
/** A list may always hold this many members, even over few slots. */
const MIN_LIST_MEMBERS = 32;

/**
 * A set of key slots (src/watch/key-slots.ts numbers the keys): what one watch holds per key is
 * membership in a few of these, never a copy of anything.
 *
 * A set starts as a sorted list of its members and becomes a bitmap once the list would take more
 * than the bitmap's bytes (one member per 32 slots up to the highest member; at most
 * MAX_LIST_MEMBERS), and stays one until clear(). Slots are numbered in no useful order (the
 * pool's), so a small set, such as the keys of the first snapshot slices a watch sent, spreads
 * over every slot: as a bitmap it would cost the whole slot range, as a list four bytes per
 * member. The bitmap has a second level of one bit per word that lets a scan skip empty
 * stretches, so finding the next member costs about (slots / 1024) word reads, not (slots / 32);
 * its words are allocated as it becomes one and grow with the slots.
 */
export class SlotBits {
  /** Sorted members while the set is a list (`words` empty); its length is the capacity. */
  private list = EMPTY;
  private words = EMPTY;
  private summary = EMPTY;
  private dense = false;
  private members = 0;

  /** listLimit: a fixed limit on the list's members instead of the one that follows the slots (tests). */
  constructor(private readonly listLimit?: number) {
    if (listLimit !== undefined && !(listLimit >= 0)) throw new RangeError(`the list limit is 0 or more, got ${listLimit}`);
  }

  get size(): number {
    return this.members;
  }

  /** Bytes of members held (list or bitmap), for tests of what a watch holds. */
  get heldBytes(): number {
    return this.list.byteLength + this.words.byteLength + this.summary.byteLength;
  }

  has(slot: number): boolean {
    if (!this.dense) return this.indexOf(slot) >= 0;
    const word = slot >>> 5;
    return word < this.words.length && (this.words[word]! & (1 << (slot & 31))) !== 0;
  }

  /** Adds the slot; true when it was not a member. */
  add(slot: number): boolean {
    if (!this.dense) {
      const at = this.indexOf(slot);
      if (at >= 0) return false;
      const index = ~at;
      const highest = index === this.members ? slot : this.list[this.members - 1]!;
      const limit = this.limitFor(highest);
      if (this.members < limit) {
        this.insertAt(index, slot, limit);
        return true;
      }
      this.becomeBitmap();
    }
    const word = slot >>> 5;
    if (word >= this.words.length) this.grow(word);
    const bit = 1 << (slot & 31);
    const before = this.words[word]!;
    if ((before & bit) !== 0) return false;
    this.words[word] = before | bit;
    if (before === 0) this.summary[word >>> 5]! |= 1 << (word & 31);
    this.members++;
    return true;
  }

  /** Removes the slot; true when it was a member. */
  delete(slot: number): boolean {
    if (!this.dense) {
      const at = this.indexOf(slot);
      if (at < 0) return false;
      this.list.copyWithin(at, at + 1, this.members);
      this.members--;
      return true;
    }
    const word = slot >>> 5;
    if (word >= this.words.length) return false;
    const bit = 1 << (slot & 31);
    const before = this.words[word]!;
    if ((before & bit) === 0) return false;
    const after = before & ~bit;
    this.words[word] = after;
    if (after === 0) this.summary[word >>> 5]! &= ~(1 << (word & 31));
    this.members--;
    return true;
  }

  /** The first member at or after `from`, wrapping around to the start; -1 when empty. */
  nextFrom(from: number): number {
    if (this.members === 0) return -1;
    if (!this.dense) {
      const at = this.indexOf(from);
      const index = at >= 0 ? at : ~at;
      return this.list[index < this.members ? index : 0]!;
    }
    const found = this.firstAtOrAfter(from);
    return found >= 0 ? found : this.firstAtOrAfter(0);
  }

  /**
   * Calls `fn` for each member, in slot order: the list as it is, or the bitmap's non-empty words
   * found through the summary. `fn` must not change this set.
   */
  forEach(fn: (slot: number) => void): void {
    if (!this.dense) {
      const list = this.list;
      for (let i = 0; i < this.members; i++) fn(list[i]!);
      return;
    }
    const { words, summary } = this;
    for (let group = 0; group < summary.length; group++) {
      for (let groupBits = summary[group]!; groupBits !== 0; groupBits &= groupBits - 1) {
        const word = (group << 5) | lowestBit(groupBits);
        for (let bits = words[word]!; bits !== 0; bits &= bits - 1) fn((word << 5) | lowestBit(bits));
      }
    }
  }

  clear(): void {
    this.list = EMPTY;
    this.words = EMPTY;
    this.summary = EMPTY;
    this.dense = false;
    this.members = 0;
  }

  /** The member's index in the list, or ~(where it would go). */
  private indexOf(slot: number): number {
    const list = this.list;
    let low = 0;
    let high = this.members - 1;
    while (low <= high) {
      const mid = (low + high) >>> 1;
      const value = list[mid]!;
      if (value < slot) low = mid + 1;
      else if (value > slot) high = mid - 1;
      else return mid;
    }
    return ~low;
  }

  /** How many members the list may hold when its highest is `highest`. */
  private limitFor(highest: number): number {
    if (this.listLimit !== undefined) return this.listLimit;
    return Math.min(MAX_LIST_MEMBERS, Math.max(MIN_LIST_MEMBERS, (highest + 1) >>> 5));
  }

  private insertAt(at: number, slot: number, limit: number): void {
    if (this.members === this.list.length) {
      const grown = new Int32Array(Math.min(limit, Math.max(8, this.list.length + (this.list.length >>> 1))));
      grown.set(this.list.subarray(0, this.members));
      this.list = grown;
    }
    this.list.copyWithin(at + 1, at, this.members);
    this.list[at] = slot;
    this.members++;
  }

  private becomeBitmap(): void {
    const members = this.list.subarray(0, this.members);
    this.list = EMPTY;
    this.members = 0;
    this.dense = true;
    for (const slot of members) this.add(slot);
  }

  private firstAtOrAfter(from: number): number {
    let word = from >>> 5;
    if (word >= this.words.length) return -1;
    const bits = this.words[word]! & (-1 << (from & 31));
    if (bits !== 0) return (word << 5) | lowestBit(bits);
    word++;
    let group = word >>> 5;
    if (group >= this.summary.length) return -1;
    let groupBits = (word & 31) === 0 ? this.summary[group]! : this.summary[group]! & (-1 << (word & 31));
    for (;;) {
      if (groupBits !== 0) {
        const found = (group << 5) | lowestBit(groupBits);
        return (found << 5) | lowestBit(this.words[found]!);
      }
      if (++group >= this.summary.length) return -1;
      groupBits = this.summary[group]!;
    }
  }

  private grow(word: number): void {
    let length = Math.max(32, this.words.length);
    while (length <= word) length *= 2;
    const words = new Int32Array(length);
    words.set(this.words);
    const summary = new Int32Array(Math.ceil(length / 32));
    summary.set(this.summary);
    this.words = words;
    this.summary = summary;
  }
}

const EMPTY = new Int32Array(0);

/** The index of the lowest set bit of a non-zero 32-bit value. */
function lowestBit(bits: number): number {
  return 31 - Math.clz32(bits & -bits);
}
