import type { KeyStatus } from "../domain/types";

/**
 * The one latest state of every key that the watches share. Each key gets a small integer slot,
 * so that a watch can hold "not yet sent" as one bit per slot (src/watch/slot-bits.ts) and read
 * the state itself here when it sends: what a watch sends for a key is the same status object
 * for every watch, converted and encoded once.
 *
 * A key that leaves the pool keeps its slot, with no status (a tombstone), while a watch may
 * still owe its client the removal; the hub reclaims tombstones that no watch refers to.
 */
export class KeySlots {
  private readonly slotOf = new Map<string, number>();
  private readonly hashes: string[] = [];
  private readonly statuses: (KeyStatus | null)[] = [];
  /** The hub's change stamp of each slot's last change (a snapshot slice compares with it). */
  private changed = new Float64Array(1024);
  private readonly free: number[] = [];
  private tombs = 0;

  slot(keyHash: string): number | undefined {
    return this.slotOf.get(keyHash);
  }

  /** The key's slot, made for it if it has none. */
  slotFor(keyHash: string): number {
    let slot = this.slotOf.get(keyHash);
    if (slot !== undefined) return slot;
    slot = this.free.pop() ?? this.hashes.length;
    this.slotOf.set(keyHash, slot);
    this.hashes[slot] = keyHash;
    this.statuses[slot] = null;
    if (slot >= this.changed.length) {
      const grown = new Float64Array(this.changed.length * 2);
      grown.set(this.changed);
      this.changed = grown;
    }
    this.changed[slot] = 0;
    this.tombs++; // no status yet: counted as a tombstone until set()
    return slot;
  }

  hashAt(slot: number): string {
    return this.hashes[slot]!;
  }

  /** The key's latest status; null once it left the pool. */
  statusAt(slot: number): KeyStatus | null {
    return this.statuses[slot] ?? null;
  }

  changedAt(slot: number): number {
    return this.changed[slot]!;
  }

  set(slot: number, status: KeyStatus, stamp: number): void {
    if (this.statuses[slot] === null) this.tombs--;
    this.statuses[slot] = status;
    this.changed[slot] = stamp;
  }

  /** The key left the pool: its slot stays, without a status, until reclaim(). */
  bury(slot: number, stamp: number): void {
    if (this.statuses[slot] !== null) this.tombs++;
    this.statuses[slot] = null;
    this.changed[slot] = stamp;
  }

  get tombstones(): number {
    return this.tombs;
  }

  get live(): number {
    return this.slotOf.size - this.tombs;
  }

  /** Slots in use, live or not: the length every watch's bits may reach. */
  get capacity(): number {
    return this.hashes.length;
  }

  /** The tombstones' slots. */
  *tombstoneSlots(): Generator<number> {
    for (const slot of this.slotOf.values()) if (this.statuses[slot] === null) yield slot;
  }

  /** Frees a tombstone's slot for another key (no watch refers to it any more). */
  reclaim(slot: number): void {
    if (this.statuses[slot] !== null) return;
    this.slotOf.delete(this.hashes[slot]!);
    this.hashes[slot] = "";
    this.tombs--;
    this.free.push(slot);
  }

  clear(): void {
    this.slotOf.clear();
    this.hashes.length = 0;
    this.statuses.length = 0;
    this.free.length = 0;
    this.tombs = 0;
  }
}
