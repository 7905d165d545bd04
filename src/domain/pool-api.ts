/**
 * The pool as its users see it: the transport's services, the watch hub, storage, and any other
 * backend that keeps the pool elsewhere. Each view is derived from KeyPool's own signatures, so a
 * change to the pool changes them too.
 *
 * The calls a pool kept across the network must wait for may return a promise: callers await
 * them. The in-memory KeyPool answers them synchronously, which satisfies the same type.
 */
import type { KeyPool } from "./key-pool";

/** A value now, or later. */
export type MaybePromise<T> = T | Promise<T>;

type MayWait<F> = F extends (...args: infer A) => infer R ? (...args: A) => MaybePromise<Awaited<R>> : never;

/** The calls that read or change the pool's shared state. */
export type PoolCall =
  | "lease"
  | "leaseWhenReady"
  | "reportRateLimit"
  | "incrementUsage"
  | "addKeys"
  | "removeKey"
  | "disableKey"
  | "enableKey"
  | "listKeys"
  | "keysAfter"
  | "lockout"
  | "markForCheck";

/** What the RPC services call. */
export type PoolApi = { [M in PoolCall]: MayWait<KeyPool[M]> };

/**
 * What the watch hub needs: the change feed, every key's routing attributes to start from
 * (viewKeys), and, read in the same turn as the hub's view of the changes so that no change
 * falls between them, snapshot slices (src/watch/snapshot-slices.ts) and the status of a key it
 * sends (getKey); hence both are synchronous here.
 */
export type WatchedPool = Pick<KeyPool, "changes" | "keysAfter" | "getKey" | "viewKeys">;

/**
 * What the key checker (src/checker) needs: the change feed and a first listing in the same turn
 * (so synchronous), what it checks a key with, and where its findings go (which may wait on a
 * pool kept across the network).
 */
export type CheckedPool = Pick<KeyPool, "changes" | "listKeys" | "getKey"> & {
  [M in "markForCheck" | "checkSubject" | "applyFinding"]: MayWait<KeyPool[M]>;
};

/**
 * What storage needs at start (restore, configured keys) and while writing (secrets, statuses,
 * and a leased key's soft state without its whole status).
 */
export type DurablePool = Pick<KeyPool, "changes" | "secretOf" | "listKeys" | "getKey" | "softStateOf" | "restore" | "addKeys">;

/**
 * Awaited before acknowledging a call that changed the pool, so that an acknowledged change is
 * durable; without storage it resolves at once.
 */
export interface Durability {
  /** Resolves when every change made before the call is committed; rejects if saving failed. */
  flush(): Promise<void>;
  /**
   * Tells `listener` whenever saving stops (a commit failed) or works again (a later commit
   * succeeded), so that health can say NOT_SERVING meanwhile. Returns the unsubscribe function.
   */
  watchSaving?(listener: (saving: boolean) => void): () => void;
  /** Where changes are saved, as the health log lines name it; default "the state file". */
  readonly savedTo?: string;
}

export const noDurability: Durability = { flush: () => Promise.resolve() };
