/**
 * Group commit: the pool stays the hot path and the store follows it.
 *
 * The change-feed listener only notes which keys changed, in a dirty map (a map write: cheap and
 * synchronous, on the pool's turn; no copy of the key's status, which would live until the commit).
 * A commit reads each dirty key's current status from the pool and writes them all in one
 * transaction, one batch at a time (committers.ts: in production a worker thread, so that the
 * fsync never blocks the event loop). `flush()` resolves once everything changed before the call
 * is committed, so an RPC that awaits it answers only after its change is durable; the RPCs that
 * arrive while one batch is on its way to disk all share the next one.
 *
 * Soft state (a lease taken or ended: last used, hold, in flight) does not ask for a commit of
 * its own: it rides along with the next one, or is written after `lazyMs`. `close()` writes
 * everything, soft state included. A key whose only changes since its row was written are soft
 * gets a soft row (its lease fields: key-rows.ts) instead of its whole row again, read from the
 * pool without making its status.
 */
import type { Durability, DurablePool } from "../domain/pool-api";
import type { Clock, Timer } from "../domain/clock";
import { ErrorCode, PoolError } from "../domain/errors";
import type { ChangeCause, KeyStatus, PoolEvent, ProviderId } from "../domain/types";
import { SyncCommitter, type BatchCommitter } from "./committers";
import type { KeyOrigin, StateStore, StoreWrite } from "./state-store";

/** The part of the pool that the writer reads. */
export type ObservedPool = Pick<DurablePool, "changes" | "secretOf" | "getKey" | "softStateOf">;

export interface GroupCommitOptions {
  /** Drives the lazy write of soft state and stamps removals. */
  clock: Clock;
  /** How long soft state may wait for a commit. Default 1000 ms. */
  lazyMs?: number;
  /** Told about a failed commit (the flushes waiting on it are rejected too): the error callers get, and its cause. */
  onError?: (err: Error, cause: Error) => void;
  /** Told how long each successful commit took, from hand-over to the committer to its fsync. */
  onCommitted?: (seconds: number) => void;
  /**
   * Keys in the pool without a row in the store (configured keys nothing has happened to yet):
   * a soft row needs its key's row, so their first write is the whole row. Every other key in
   * the pool must have its row.
   */
  unstored?: Iterable<string>;
}

/** Causes that change nothing an RPC acknowledges: written lazily. */
const SOFT_CAUSES: ReadonlySet<ChangeCause> = new Set<ChangeCause>(["leased", "lease_ended"]);

interface DirtyKey {
  /**
   * Only for a removed key: its status as it left the pool, when a change to it was still
   * unwritten (a key in the pool is written with its status at the commit).
   */
  readonly status?: KeyStatus;
  /** Known when the key was added since the last commit. */
  readonly secret?: string;
  readonly origin?: KeyOrigin;
  /** Non-zero: removed at this time. */
  readonly removedAt: number;
  /** From the removal event, for a key that may have no row yet. */
  readonly removed?: { provider: ProviderId; modelFamilies: readonly string[] };
}

/** A key in the pool that changed, with nothing else to remember: shared, so a change allocates nothing. */
const CHANGED: DirtyKey = Object.freeze({ removedAt: 0 });
/** The same, when every change since the key's last write is soft: shared too. */
const SOFT_ONLY: DirtyKey = Object.freeze({ removedAt: 0 });

/**
 * One key's entry from an unwritten older batch and a newer one. A key in the pool is written as
 * it is at the commit, so a newer entry with nothing to remember (CHANGED, SOFT_ONLY) adds nothing
 * to an older entry of a key in the pool: the older one stays, with its secret and origin, and a
 * hard change stays hard.
 */
function newerOf(older: DirtyKey, newer: DirtyKey): DirtyKey {
  if (newer !== CHANGED && newer !== SOFT_ONLY) return newer;
  if (older === SOFT_ONLY) return newer;
  if (older.removedAt === 0) return older;
  return CHANGED;
}

interface FlushWaiter {
  resolve(): void;
  reject(err: Error): void;
}

export interface GroupCommitStats {
  /** Transactions written. */
  commits: number;
  /** Keys written (a row, or a soft row), over all commits. */
  keysWritten: number;
}

export class GroupCommitWriter implements Durability {
  private dirty = new Map<string, DirtyKey>();
  /** Flushes waiting for the next batch (their changes are in `dirty`). */
  private nextWaiters: FlushWaiter[] = [];
  /** The batch on its way to disk, and the flushes it will settle. */
  private inFlight: { batch: Map<string, DirtyKey>; waiters: FlushWaiter[]; started: number } | undefined;
  private commitScheduled = false;
  /** A change that should not wait for the lazy timer (a report, a revocation) is dirty. */
  private hardPending = false;
  private lazyTimer: Timer | undefined;
  private closed = false;
  /** False from a failed commit until one succeeds. */
  private saving = true;
  private readonly savingListeners = new Set<(saving: boolean) => void>();
  private readonly committer: BatchCommitter;
  private readonly unsubscribe: () => void;
  private readonly lazyMs: number;
  /** GroupCommitOptions.unstored, less the keys written since. */
  private readonly unstored: Set<string>;
  readonly stats: GroupCommitStats = { commits: 0, keysWritten: 0 };

  /** `target`: a committer, or a StateStore written on this thread. */
  constructor(
    target: BatchCommitter | StateStore,
    private readonly pool: ObservedPool,
    private readonly options: GroupCommitOptions,
  ) {
    this.committer = "commit" in target ? target : new SyncCommitter(target);
    this.lazyMs = options.lazyMs ?? 1000;
    this.unstored = new Set(options.unstored);
    this.unsubscribe = pool.changes.subscribe(this.onChange);
  }

  flush(): Promise<void> {
    if (this.closed) {
      return Promise.reject(
        new PoolError(ErrorCode.Unavailable, "keypool is shutting down: the change was not saved"),
      );
    }
    if (this.dirty.size === 0 && !this.inFlight) return Promise.resolve();
    return new Promise<void>((resolve, reject) => {
      if (this.dirty.size > 0) {
        this.nextWaiters.push({ resolve, reject });
        this.scheduleCommit();
      } else {
        // Everything changed before this call is in the batch already on its way.
        this.inFlight!.waiters.push({ resolve, reject });
      }
    });
  }

  watchSaving(listener: (saving: boolean) => void): () => void {
    this.savingListeners.add(listener);
    if (!this.saving) listener(false);
    return () => this.savingListeners.delete(listener);
  }

  private setSaving(saving: boolean): void {
    if (this.saving === saving) return;
    this.saving = saving;
    for (const listener of this.savingListeners) listener(saving);
  }

  /** Keys changed and not yet on their way to disk. */
  get pending(): number {
    return this.dirty.size;
  }

  /** Keys changed and not yet committed: waiting, or in the batch on its way. */
  get queued(): number {
    return this.dirty.size + (this.inFlight?.batch.size ?? 0);
  }

  /**
   * Stops listening and writes every change not yet written, soft state included (the pool
   * publishes an event for every change, so the dirty map holds them all: the cost is the
   * changed keys, not the pool), then releases the file. Call after the server stopped taking
   * calls. Throws if the final write fails. Idempotent.
   */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.unsubscribe();
    this.lazyTimer?.cancel();
    this.lazyTimer = undefined;
    // The batch in flight is written again with the rest: if it failed, nothing is lost.
    const batch = new Map(this.inFlight?.batch);
    for (const [keyHash, entry] of this.dirty) {
      const older = batch.get(keyHash);
      batch.set(keyHash, older ? newerOf(older, entry) : entry);
    }
    this.dirty = new Map();
    const waiters = [...(this.inFlight?.waiters ?? []), ...this.nextWaiters];
    this.inFlight = undefined;
    this.nextWaiters = [];
    try {
      this.committer.closeWith([...this.writesOf(batch)]);
    } catch (cause) {
      const err = this.saveError(cause);
      for (const waiter of waiters) waiter.reject(err);
      throw err;
    }
    if (batch.size > 0) {
      this.stats.commits += 1;
      this.stats.keysWritten += batch.size;
    }
    for (const waiter of waiters) waiter.resolve();
  }

  private readonly onChange = (event: PoolEvent): void => {
    if (this.closed) return;
    if (event.type === "removed") {
      const known = this.dirty.get(event.keyHash);
      this.dirty.set(event.keyHash, {
        secret: known?.secret,
        origin: known?.origin,
        // The pool no longer has the key at the commit: an unwritten change is taken now.
        status: known ? (known.status ?? event.key?.status()) : undefined,
        removedAt: Math.max(1, this.options.clock.now()),
        removed: { provider: event.provider, modelFamilies: event.modelFamilies },
      });
      this.hardPending = true;
      this.scheduleCommit();
      return;
    }
    const keyHash = event.key.keyHash;
    const known = this.dirty.get(keyHash);
    if (event.cause === "added") {
      // AddKeys: the store is the only other place that will ever know this secret.
      this.dirty.set(keyHash, { secret: this.pool.secretOf(keyHash), origin: "runtime", removedAt: 0 });
    } else if (known === undefined) {
      this.dirty.set(keyHash, SOFT_CAUSES.has(event.cause) ? SOFT_ONLY : CHANGED);
    } else if (known === SOFT_ONLY) {
      if (!SOFT_CAUSES.has(event.cause)) this.dirty.set(keyHash, CHANGED);
    } else if (known.removedAt !== 0) {
      // Back in the pool after a removal in the same batch: written as it is at the commit.
      this.dirty.set(keyHash, known.secret === undefined && known.origin === undefined ? CHANGED : { secret: known.secret, origin: known.origin, removedAt: 0 });
    }
    if (SOFT_CAUSES.has(event.cause)) {
      this.scheduleLazy();
    } else {
      this.hardPending = true;
      this.scheduleCommit();
    }
  };

  private scheduleCommit(): void {
    if (this.commitScheduled || this.closed || this.inFlight) return;
    this.commitScheduled = true;
    // After this turn's I/O callbacks: every call that arrived with this one shares the commit.
    setImmediate(() => {
      this.commitScheduled = false;
      this.startCommit();
    });
  }

  private scheduleLazy(): void {
    if (this.lazyTimer || this.closed) return;
    this.lazyTimer = this.options.clock.setTimer(this.lazyMs, () => {
      this.lazyTimer = undefined;
      if (this.dirty.size > 0) this.scheduleCommit();
    });
  }

  /** Sends every dirty key to disk as one batch; one batch at a time. */
  private startCommit(): void {
    if (this.closed || this.inFlight) return;
    if (this.dirty.size === 0) {
      for (const waiter of this.nextWaiters.splice(0)) waiter.resolve();
      return;
    }
    const batch = this.dirty;
    this.dirty = new Map();
    this.hardPending = false;
    this.lazyTimer?.cancel();
    this.lazyTimer = undefined;
    const inFlight = { batch, waiters: this.nextWaiters, started: performance.now() };
    this.nextWaiters = [];
    this.inFlight = inFlight;
    this.committer.commit(this.writesOf(batch), (failure) => this.onCommitted(inFlight, failure));
  }

  private onCommitted(inFlight: { batch: Map<string, DirtyKey>; waiters: FlushWaiter[]; started: number }, failure?: Error): void {
    if (this.inFlight !== inFlight) return; // close() took over
    this.inFlight = undefined;
    if (failure) {
      // Keep the changes for the next commit; what changed since is newer and wins (but a soft
      // change since does not make an unwritten hard one soft).
      for (const [keyHash, entry] of inFlight.batch) {
        const newer = this.dirty.get(keyHash);
        this.dirty.set(keyHash, newer ? newerOf(entry, newer) : entry);
      }
      const err = this.saveError(failure);
      this.options.onError?.(err, failure);
      for (const waiter of inFlight.waiters) waiter.reject(err);
      this.setSaving(false);
    } else {
      this.stats.commits += 1;
      this.stats.keysWritten += inFlight.batch.size;
      // Each key of the batch has its row now.
      if (this.unstored.size > 0) for (const keyHash of inFlight.batch.keys()) this.unstored.delete(keyHash);
      this.options.onCommitted?.((performance.now() - inFlight.started) / 1000);
      for (const waiter of inFlight.waiters) waiter.resolve();
      this.setSaving(true);
    }
    // Whatever came while this batch was on its way goes next, at once if someone waits for it.
    if (this.dirty.size === 0) return;
    if (this.nextWaiters.length > 0) this.startCommit();
    else if (this.hardPending) this.scheduleCommit();
    else this.scheduleLazy();
  }

  private saveError(cause: unknown): PoolError {
    // Callers see the cause but not the server's file layout; the log names the file.
    return new PoolError(
      ErrorCode.Unavailable,
      `the change could not be saved to the state file (${cause instanceof Error ? cause.message : String(cause)}); retry later`,
    );
  }

  /** The batch's writes, each made (its status read from the pool) as it is taken. */
  private *writesOf(batch: Map<string, DirtyKey>): Generator<StoreWrite> {
    for (const [keyHash, entry] of batch) {
      const origin = entry.origin;
      if (entry.removedAt > 0 && entry.secret === undefined) {
        // The pool no longer knows the secret; the stored one (if any) stays.
        yield {
          kind: "remove",
          keyHash,
          provider: entry.removed!.provider,
          modelFamilies: entry.removed!.modelFamilies,
          status: entry.status,
          origin,
          removedAt: entry.removedAt,
        };
        continue;
      }
      if (entry === SOFT_ONLY && !this.unstored.has(keyHash)) {
        const soft = this.pool.softStateOf(keyHash);
        if (soft) yield { kind: "soft", keyHash, soft };
        continue;
      }
      // A key in the pool is written as it is now: every change noted so far is in this status.
      const status = entry.removedAt > 0 ? entry.status : this.pool.getKey(keyHash);
      if (status) {
        yield {
          kind: "upsert",
          status,
          secret: entry.secret ?? this.pool.secretOf(keyHash),
          origin,
          removedAt: entry.removedAt,
        };
      }
    }
  }
}
