/**
 * A set of key slots as bits (src/watch/key-slots.ts numbers the keys): what one watch holds per
 * key is a bit in a few of these, never a copy of anything. A second level of one bit per word
 * lets a scan skip empty stretches, so finding the next member costs about (slots / 1024) word
 * reads, not (slots / 32). The words are allocated on the first add and grow with the slots.
 */
export class SlotBits {
  private words = EMPTY;
  private summary = EMPTY;
  private members = 0;

  get size(): number {
    return this.members;
  }

  has(slot: number): boolean {
    const word = slot >>> 5;
    return word < this.words.length && (this.words[word]! & (1 << (slot & 31))) !== 0;
  }

  /** Adds the slot; true when it was not a member. */
  add(slot: number): boolean {
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
    const found = this.firstAtOrAfter(from);
    return found >= 0 ? found : this.firstAtOrAfter(0);
  }

  clear(): void {
    this.words = EMPTY;
    this.summary = EMPTY;
    this.members = 0;
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
