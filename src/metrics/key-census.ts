/**
 * What /metrics says about the keys (how many per provider and state, how many ready per family)
 * kept up to date from the pool's change feed, so that a scrape never copies the pool: one small
 * record per key, replaced on each change. Readiness depends on the time as well as on changes
 * (a cooldown ends without an event), so it is counted at scrape time from each key's ready_at.
 */
import type { ChangeFeed } from "../domain/change-feed";
import { AS_DOUBLE } from "../domain/double-fields";
import { sameList } from "../domain/same-list";
import type { KeyState, KeyView, PoolEvent, ProviderId } from "../domain/types";

export interface CensusPool {
  readonly changes: ChangeFeed<PoolEvent>;
  /** Every key, without copying its status (KeyPool.viewKeys). */
  viewKeys(): Iterable<KeyView>;
}

interface CensusRecord {
  provider: ProviderId;
  state: KeyState;
  families: readonly string[];
  readyAt: number;
}

export interface KeyCounts {
  /** By provider, then state. */
  byState: Map<ProviderId, Map<KeyState, number>>;
  /** ACTIVE keys whose ready_at has passed, by provider, then family. */
  readyByFamily: Map<ProviderId, Map<string, number>>;
}

export class KeyCensus {
  private readonly keys = new Map<string, CensusRecord>();
  private readonly familyLists = new Map<string, readonly string[]>();
  private unsubscribe: (() => void) | undefined;
  private closed = false;

  /**
   * The census is taken at its first use (a scrape, a report to label), not when the server
   * starts: a replica joining a large pool serves without walking it once more first. From then
   * on the change feed keeps it.
   */
  constructor(private readonly pool: CensusPool) {}

  /** The provider of a key in the pool, for labelling what is reported about it. */
  providerOf(keyHash: string): ProviderId | undefined {
    this.take();
    return this.keys.get(keyHash)?.provider;
  }

  count(now: number): KeyCounts {
    this.take();
    const byState = new Map<ProviderId, Map<KeyState, number>>();
    const readyByFamily = new Map<ProviderId, Map<string, number>>();
    for (const key of this.keys.values()) {
      let states = byState.get(key.provider);
      if (!states) byState.set(key.provider, (states = new Map()));
      states.set(key.state, (states.get(key.state) ?? 0) + 1);
      let ready = readyByFamily.get(key.provider);
      if (!ready) readyByFamily.set(key.provider, (ready = new Map()));
      for (const family of key.families) {
        // Every family a provider's keys serve is listed, at 0 when none is ready: an alert on
        // "no ready key" needs the series to exist.
        const ok = key.state === "active" && key.readyAt <= now ? 1 : 0;
        ready.set(family, (ready.get(family) ?? 0) + ok);
      }
    }
    return { byState, readyByFamily };
  }

  get size(): number {
    this.take();
    return this.keys.size;
  }

  close(): void {
    this.closed = true;
    this.unsubscribe?.();
  }

  private take(): void {
    if (this.unsubscribe || this.closed) return;
    this.unsubscribe = this.pool.changes.subscribe(this.onChange);
    for (const key of this.pool.viewKeys()) this.record(key);
  }

  private readonly onChange = (event: PoolEvent): void => {
    if (event.type === "removed") this.keys.delete(event.keyHash);
    else this.record(event.key);
  };

  private record(key: KeyView): void {
    const known = this.keys.get(key.keyHash);
    if (!known) {
      const record: CensusRecord = { provider: key.provider, state: key.state, families: this.intern(key.modelFamilies), readyAt: AS_DOUBLE };
      record.readyAt = key.readyAt;
      this.keys.set(key.keyHash, record);
      return;
    }
    // Most changes are leases and usage: the record is updated in place, nothing allocated.
    known.provider = key.provider;
    known.state = key.state;
    known.readyAt = key.readyAt;
    if (!sameList(known.families, key.modelFamilies)) known.families = this.intern(key.modelFamilies);
  }

  /**
   * One shared list per distinct set of families (a handful in a pool of any size), whatever
   * lists the pool's views carry (a replica's mirror has a list per status).
   */
  private intern(families: readonly string[]): readonly string[] {
    const name = families.join("\n");
    let shared = this.familyLists.get(name);
    if (!shared) this.familyLists.set(name, (shared = Object.freeze([...families])));
    return shared;
  }
}
