/**
 * The pool's public vocabulary. Nothing here knows about gRPC: the transport converts these to
 * and from keypool.v1 messages.
 */

/** An upstream API. Add a provider here and in providers/. */
export type ProviderId = "openai" | "anthropic" | "google" | "mistral" | "azure" | "bedrock" | "vertex";

/** Whether a key may be leased. Mirrors keypool.v1.KeyState. */
export type KeyState = "active" | DisableState;

/** The states an operator (DisableKey) or an upstream answer takes a key out of service with. */
export type DisableState = "disabled" | "revoked" | "over_quota";
export const DISABLE_STATES: readonly DisableState[] = ["disabled", "revoked", "over_quota"];
export const isDisableState = (value: unknown): value is DisableState =>
  (DISABLE_STATES as readonly unknown[]).includes(value);

export interface TokenUsage {
  inputTokens: number;
  outputTokens: number;
  prompts: number;
}

/** A key to add: its secret and what it serves. */
export interface KeySpec {
  provider: ProviderId;
  key: string;
  /** Empty or absent: the provider's default families. */
  modelFamilies?: string[];
  trial?: boolean;
  organizationId?: string;
}

/**
 * Everything about a key except its secret: what ListKeys, WatchKeys and the change feed carry.
 * Times are epoch milliseconds; 0 means never / not set.
 */
export interface KeyStatus {
  keyHash: string;
  provider: ProviderId;
  modelFamilies: string[];
  organizationId: string;
  trial: boolean;
  state: KeyState;
  stateReason: string;
  /** max(holdUntil, cooldownUntil): not leased before this. */
  readyAt: number;
  /** The short hold after a lease or a successful report (reuse delay, reset headers). */
  holdUntil: number;
  /** The cooldown after a 429; only ever extended. */
  cooldownUntil: number;
  rateLimitedAt: number;
  lastUsed: number;
  /** When the key checker last finished a check of this key (src/checker); 0: never. */
  lastChecked: number;
  promptCount: number;
  /** By model family. */
  usage: Record<string, TokenUsage>;
  inFlight: number;
  leaseCount: number;
  /**
   * The operator named this key's families (in its spec): the key checker keeps them. Absent
   * means false (statuses stored before the checker existed).
   */
  familiesPinned?: boolean;
}

/**
 * What a lease changes in a key that outlives a restart (its in-flight count does not): storage
 * writes these alone when nothing else about the key changed since its row was written.
 */
export interface KeySoftState {
  lastUsed: number;
  leaseCount: number;
  holdUntil: number;
}

/** What storage keeps and gives back at start: a status plus the secret. */
export interface KeyRecord extends KeyStatus {
  key: string;
}

/** What Lease returns: the one place a secret leaves the pool. */
export interface Lease {
  key: string;
  keyHash: string;
  provider: ProviderId;
  modelFamily: string;
  organizationId: string;
  leaseId: string;
  leaseExpiresAt: number;
}

/** Why a key changed: for logs, storage and tests. */
export type ChangeCause =
  | "added"
  | "leased"
  | "lease_ended"
  | "reported"
  | "revoked"
  | "usage"
  | "disabled"
  | "enabled"
  | "restored"
  | "checked"
  | "check_requested"
  | "family_withdrawn"
  | "over_quota";

/**
 * A key as its pool holds it (src/domain/key-view.ts), without its secret: the fields the
 * change feed's followers route and schedule by, read in place, and the whole status made only
 * when asked for. Followers read what they need on the publisher's turn (their listener runs
 * inline) and keep the key hash, not the view: a view read later shows the key as it is then,
 * and a status kept per key would be one more copy of every key, alive until the next change.
 */
export interface KeyView {
  readonly keyHash: string;
  readonly provider: ProviderId;
  /** Never edited: a change of families is a new list (the in-memory pool shares one per distinct list). */
  readonly modelFamilies: readonly string[];
  readonly state: KeyState;
  readonly readyAt: number;
  readonly lastChecked: number;
  /** The key's whole status as it is now, as an object that nobody changes afterwards. */
  status(): KeyStatus;
}

/** Exactly one event per change to a key. Never carries a secret. */
export type PoolEvent =
  | { type: "updated"; cause: ChangeCause; key: KeyView }
  | {
      type: "removed";
      keyHash: string;
      provider: ProviderId;
      modelFamilies: readonly string[];
      /** The key as it left the pool, where the pool still has it (the in-memory pool). */
      key?: KeyView;
    };
