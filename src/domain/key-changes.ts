import type { ChangeFeed } from "./change-feed";
import type { Clock } from "./clock";
import type { KeyEntry } from "./key-entry";
import type { KeyTable } from "./key-table";
import { EntryView } from "./key-view";
import type { ChangeCause, PoolEvent } from "./types";

/** How a change moves a key in the selection index. */
export type Reindex =
  /** The key became ACTIVE: it enters the index. */
  | "add"
  /** The key left ACTIVE: it leaves the index. */
  | "remove"
  /** Its readyAt or lastUsed changed: it moves within the index. */
  | "reposition"
  /** Nothing the index reads changed. */
  | "none";

/**
 * The one sequence every change to a key follows once its fields are set: re-index it, publish
 * exactly one event, then, when the change can have freed a key or left a family without any,
 * serve the waiting leases. Writing the sequence once keeps the index, the watchers and the
 * waiters in step whatever the change.
 */
export class KeyChanges {
  constructor(
    private readonly keys: KeyTable,
    private readonly feed: ChangeFeed<PoolEvent>,
    private readonly clock: Clock,
    private readonly serveWaiters: () => void,
  ) {}

  commit(entry: KeyEntry, cause: ChangeCause, reindex: Reindex, serveWaiters: boolean, now?: number): void {
    const index = this.keys.index;
    if (reindex === "add") index.add(entry, now ?? this.clock.now());
    else if (reindex === "remove") index.remove(entry);
    else if (reindex === "reposition") index.reposition(entry, now ?? this.clock.now());
    this.publish(entry, cause);
    if (serveWaiters) this.serveWaiters();
  }

  /** Takes a key out of the pool: out of the index and the table, one "removed" event. */
  remove(entry: KeyEntry): void {
    this.keys.index.remove(entry);
    this.keys.drop(entry.keyHash);
    if (this.feed.size > 0) {
      this.feed.publish({
        type: "removed",
        keyHash: entry.keyHash,
        provider: entry.provider,
        modelFamilies: entry.modelFamilies,
        key: new EntryView(entry),
      });
    }
    this.serveWaiters();
  }

  /**
   * One event per change, with a view of the key rather than a copy of its status: a follower
   * copies what it needs, when it needs it, and nothing of a change outlives its turn unless a
   * follower keeps it. Skipped when nobody listens.
   */
  private publish(entry: KeyEntry, cause: ChangeCause): void {
    if (this.feed.size > 0) this.feed.publish({ type: "updated", cause, key: new EntryView(entry) });
  }
}
