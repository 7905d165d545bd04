import type { Clock } from "../domain/clock";
import type { KeyFilter } from "../domain/key-filter";
import type { WatchedPool } from "../domain/pool-api";
import type { KeyStatus } from "../domain/types";

/** One slice of a snapshot, shared by every watch that takes it (and encoded once for them). */
export interface SnapshotSlice {
  /** The keys, in key_hash order. The array is shared: never changed once made. */
  readonly keys: readonly KeyStatus[];
  /** Each key's slot (src/watch/key-slots.ts), looked up once for every watch that takes it. */
  readonly slots: Int32Array;
  /** Whether keys follow the last of this slice. */
  readonly more: boolean;
  /** The hub's change stamp when the slice was made: a key changed after it is sent again. */
  readonly stamp: number;
  readonly madeAt: number;
  readonly membership: number;
  readonly bytes: number;
}

export interface SnapshotSlicesOptions {
  clock: Clock;
  /** Encoded size of a status, for the byte budget of a slice. */
  measure: (status: KeyStatus) => number;
  /** A key's slot in the hub's KeySlots (every key in the pool has one). */
  slotOf: (keyHash: string) => number;
  /**
   * The status the hub sends for the slot's key while it is current (src/watch/key-slots.ts
   * adopt): the listed one, or one read since the key's last change. So a slice shares each
   * status's encoding with the slices made before and the changes sent since (the transport
   * encodes a status object once).
   */
  adopt?: (slot: number, listed: KeyStatus) => KeyStatus;
  /** Encoded statuses in one slice (at least one key per slice, whatever its size). */
  sliceBytes: number;
  /** A slice older than this is made again rather than shared. */
  maxAgeMs: number;
  /** Bytes of encoded statuses the shared slices may hold together; the oldest go first. */
  cacheBytes: number;
}

/**
 * Makes snapshot slices and shares them: watches that open together walk the same chain of slices
 * (the first after "", then after each slice's last hash), so a thousand of them cost one listing
 * and one encoding per slice, not a thousand. A shared slice may be a little old; a watch taking
 * it marks the keys changed since as not yet sent (KeySlots keeps each slot's last change), so the
 * client gets their new state right after the snapshot. A slice is shared only while no key joined
 * or left a filter since it was made (`membership`): a key added meanwhile would be in no slice.
 */
export class SnapshotSlices {
  private readonly cache = new Map<string, SnapshotSlice>();
  private cachedBytes = 0;
  private membershipVersion = 0;

  constructor(
    private readonly pool: Pick<WatchedPool, "keysAfter">,
    private readonly options: SnapshotSlicesOptions,
  ) {}

  /** A key was added or removed, or its provider or families changed: no cached slice holds. */
  membershipChanged(): void {
    this.membershipVersion++;
    this.cache.clear();
    this.cachedBytes = 0;
  }

  /** Whether next() would share a slice already made rather than list and encode one. */
  shared(filterKey: string, after: string): boolean {
    return this.usable(this.cache.get(`${filterKey}\u0000${after}`), this.options.clock.now());
  }

  /** The slice that follows `after` for this filter (stamp: the hub's current change stamp). */
  next(filter: KeyFilter, filterKey: string, after: string, stamp: number): SnapshotSlice {
    const id = `${filterKey}\u0000${after}`;
    const now = this.options.clock.now();
    const cached = this.cache.get(id);
    if (this.usable(cached, now)) return cached!;
    if (cached) this.drop(id, cached);

    const keys: KeyStatus[] = [];
    const slotList: number[] = [];
    let bytes = 0;
    let more = false;
    for (const listed of this.pool.keysAfter(after, filter)) {
      const slot = this.options.slotOf(listed.keyHash);
      const status = this.options.adopt ? this.options.adopt(slot, listed) : listed;
      const size = this.options.measure(status);
      if (keys.length > 0 && bytes + size > this.options.sliceBytes) {
        more = true;
        break;
      }
      keys.push(status);
      slotList.push(slot);
      bytes += size;
    }
    const slots = Int32Array.from(slotList);
    const slice: SnapshotSlice = { keys, slots, more, stamp, madeAt: now, membership: this.membershipVersion, bytes };
    this.cache.set(id, slice);
    this.cachedBytes += bytes;
    for (const [oldId, old] of this.cache) {
      if (this.cachedBytes <= this.options.cacheBytes) break;
      this.drop(oldId, old);
    }
    return slice;
  }

  /** Slices held for sharing (for tests). */
  get cachedCount(): number {
    return this.cache.size;
  }

  private usable(slice: SnapshotSlice | undefined, now: number): boolean {
    return slice !== undefined && slice.membership === this.membershipVersion && now - slice.madeAt <= this.options.maxAgeMs;
  }

  private drop(id: string, slice: SnapshotSlice): void {
    this.cache.delete(id);
    this.cachedBytes -= slice.bytes;
  }
}

/** The same text for the same filter, whatever the order of its families. */
export function filterKeyOf(filter: KeyFilter): string {
  return `${filter.provider ?? ""}\u0000${[...new Set(filter.modelFamilies ?? [])].sort().join("\u0000")}`;
}
