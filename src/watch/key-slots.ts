import { internFamilies } from "../domain/key-entry";
import { sameList } from "../domain/same-list";
import type { KeyStatus, ProviderId } from "../domain/types";

/** Statuses kept at most for sending (see KeySlots); past it, the oldest made is dropped. */
export const DEFAULT_STATUS_CACHE = 8192;

/**
 * The keys the watches share, each with a small integer slot, so that a watch can hold "not yet
 * sent" as one bit per slot (src/watch/slot-bits.ts). Per slot it keeps only what routing a
 * change needs: the key's hash, provider and families (a shared list, interned) and the hub's
 * change stamp of its last change. It keeps no status: a key's status is read from the pool when
 * a watch sends it (statusAt), so that nothing of a change outlives the change unless a watch
 * sends it.
 *
 * Statuses read for sending are kept in a bounded cache, each valid until its key changes again:
 * the watches sending one change in the same window share one status object, which the transport
 * converts and encodes once (the object is never changed). A status evicted or outdated is read
 * again: what a watch sends is always the key's current status.
 *
 * A key that leaves the pool keeps its slot, without attributes (a tombstone), while a watch may
 * still owe its client the removal; the hub reclaims tombstones that no watch refers to.
 */
export class KeySlots {
  private readonly slotOf = new Map<string, number>();
  private readonly hashes: string[] = [];
  /** null: the slot has no key in the pool (a tombstone, or made and not yet set). */
  private readonly providers: (ProviderId | null)[] = [];
  private readonly families: (readonly string[])[] = [];
  /** The hub's change stamp of each slot's last change (a snapshot slice compares with it). */
  private changed = new Float64Array(1024);
  private readonly free: number[] = [];
  private tombs = 0;

  /** The cached status of each slot (sparse), valid while cachedStamp equals the slot's stamp. */
  private readonly cached: (KeyStatus | undefined)[] = [];
  private cachedStamp = new Float64Array(1024).fill(-1);
  /** The cache's entries in the order they were made: slot and stamp, a ring. */
  private readonly ringSlots: Int32Array;
  private readonly ringStamps: Float64Array;
  private ringAt = 0;

  constructor(
    /** The key's current status in the pool; undefined when it has none. */
    private readonly read: (keyHash: string) => KeyStatus | undefined,
    cacheSize = DEFAULT_STATUS_CACHE,
  ) {
    if (!(cacheSize >= 1)) throw new RangeError(`the status cache holds at least 1 status, got ${cacheSize}`);
    this.ringSlots = new Int32Array(cacheSize).fill(-1);
    this.ringStamps = new Float64Array(cacheSize);
  }

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
    this.providers[slot] = null;
    this.families[slot] = NO_FAMILIES;
    if (slot >= this.changed.length) {
      const grown = new Float64Array(this.changed.length * 2);
      grown.set(this.changed);
      this.changed = grown;
      const stamps = new Float64Array(this.cachedStamp.length * 2).fill(-1);
      stamps.set(this.cachedStamp);
      this.cachedStamp = stamps;
    }
    this.changed[slot] = 0;
    this.forgetStatus(slot);
    this.tombs++; // no key yet: counted as a tombstone until set()
    return slot;
  }

  hashAt(slot: number): string {
    return this.hashes[slot]!;
  }

  /** Whether the slot's key is in the pool. */
  isLive(slot: number): boolean {
    return this.providers[slot] != null;
  }

  /** The key's provider; null once it left the pool. */
  providerAt(slot: number): ProviderId | null {
    return this.providers[slot] ?? null;
  }

  /** The key's families as of its last change (empty once it left the pool). */
  familiesAt(slot: number): readonly string[] {
    return this.families[slot] ?? NO_FAMILIES;
  }

  /**
   * The key's current status, read from the pool unless one read since its last change is still
   * cached; null once it left the pool.
   */
  statusAt(slot: number): KeyStatus | null {
    if (this.providers[slot] == null) return null;
    const stamp = this.changed[slot]!;
    if (this.cachedStamp[slot] === stamp) return this.cached[slot]!;
    const status = this.read(this.hashes[slot]!);
    if (!status) return null;
    this.keep(slot, stamp, status);
    return status;
  }

  /**
   * A status of the key just read from the pool in this turn (a listing for a snapshot slice):
   * the cached one if it is still current, so that both share one encoding, else this one, kept.
   */
  adopt(slot: number, status: KeyStatus): KeyStatus {
    if (this.providers[slot] == null) return status;
    const stamp = this.changed[slot]!;
    if (this.cachedStamp[slot] === stamp) return this.cached[slot]!;
    this.keep(slot, stamp, status);
    return status;
  }

  changedAt(slot: number): number {
    return this.changed[slot]!;
  }

  /** The key changed (or is first seen): its attributes now, and the change's stamp. */
  set(slot: number, provider: ProviderId, families: readonly string[], stamp: number): void {
    if (this.providers[slot] == null) this.tombs--;
    this.providers[slot] = provider;
    // Most changes keep the families: the list already kept stays, no interning needed.
    if (!sameList(this.families[slot]!, families)) this.families[slot] = internFamilies(families);
    this.changed[slot] = stamp;
  }

  /** The key left the pool: its slot stays, without attributes, until reclaim(). */
  bury(slot: number, stamp: number): void {
    if (this.providers[slot] != null) this.tombs++;
    this.providers[slot] = null;
    this.families[slot] = NO_FAMILIES;
    this.changed[slot] = stamp;
    this.forgetStatus(slot);
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

  /** Statuses cached for sending (for tests). */
  get cachedStatuses(): number {
    let n = 0;
    for (let i = 0; i < this.ringSlots.length; i++) {
      const slot = this.ringSlots[i]!;
      if (slot >= 0 && this.cachedStamp[slot] === this.ringStamps[i] && this.cached[slot] !== undefined) n++;
    }
    return n;
  }

  /** The tombstones' slots. */
  *tombstoneSlots(): Generator<number> {
    for (const slot of this.slotOf.values()) if (this.providers[slot] == null) yield slot;
  }

  /** Frees a tombstone's slot for another key (no watch refers to it any more). */
  reclaim(slot: number): void {
    if (this.providers[slot] != null) return;
    this.slotOf.delete(this.hashes[slot]!);
    this.hashes[slot] = "";
    this.tombs--;
    this.free.push(slot);
  }

  clear(): void {
    this.slotOf.clear();
    this.hashes.length = 0;
    this.providers.length = 0;
    this.families.length = 0;
    this.cached.length = 0;
    this.cachedStamp.fill(-1);
    this.ringSlots.fill(-1);
    this.free.length = 0;
    this.tombs = 0;
  }

  /** Caches a status, evicting the oldest entry of the ring if it still holds its slot's status. */
  private keep(slot: number, stamp: number, status: KeyStatus): void {
    const at = this.ringAt;
    const evicted = this.ringSlots[at]!;
    if (evicted >= 0 && this.cachedStamp[evicted] === this.ringStamps[at]) this.forgetStatus(evicted);
    this.ringSlots[at] = slot;
    this.ringStamps[at] = stamp;
    this.ringAt = at + 1 === this.ringSlots.length ? 0 : at + 1;
    this.cached[slot] = status;
    this.cachedStamp[slot] = stamp;
  }

  private forgetStatus(slot: number): void {
    this.cached[slot] = undefined;
    this.cachedStamp[slot] = -1;
  }
}

const NO_FAMILIES: readonly string[] = Object.freeze([]);
