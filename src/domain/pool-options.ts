import type { Clock } from "./clock";
import type { KeyHasher } from "./key-hash";
import type { FamilyTable } from "./model-families";

/**
 * The pool's tunables and their defaults. src/config/settings.ts maps each to its environment
 * variable and takes its default from here, so a number is written once.
 */
export const POOL_DEFAULTS = {
  reuseDelayMs: 1000,
  leaseTtlMs: 600_000,
  maxResetMs: 10_000,
  defaultCooldownMs: 10_000,
  maxCooldownMs: 60_000,
  maxWaitersPerFamily: 10_000,
  maxWaiters: 5_000,
} as const;

export interface PoolOptions {
  clock: Clock;
  /** Model → family table; default: the built-in OpenAI and Anthropic tables. */
  families?: FamilyTable;
  /** Families that may be leased at all (ALLOWED_MODEL_FAMILIES); null/absent: every family. */
  allowedFamilies?: ReadonlySet<string> | null;
  /** How long a leased key is held before it is handed out again. */
  reuseDelayMs?: number;
  /** A lease not ended by IncrementUsage ends after this long. */
  leaseTtlMs?: number;
  /** Cap on a hold taken from x-ratelimit-reset-* headers. */
  maxResetMs?: number;
  /** Cooldown after a 429 that states no wait. */
  defaultCooldownMs?: number;
  /** Cap on any cooldown. */
  maxCooldownMs?: number;
  /** Lease waiters queued per family before RESOURCE_EXHAUSTED. */
  maxWaitersPerFamily?: number;
  /** Lease waiters queued over all families before RESOURCE_EXHAUSTED: each holds a call open. */
  maxWaiters?: number;
  /** Computes key hashes; tests inject one to force a collision. Default: hashKey. */
  keyHasher?: KeyHasher;
}

/** The options with every default filled in, each checked to be a number >= 0. */
export function resolvePoolOptions(options: PoolOptions): Record<keyof typeof POOL_DEFAULTS, number> {
  const o = { ...POOL_DEFAULTS, ...definedOnly(options) };
  for (const name of Object.keys(POOL_DEFAULTS) as (keyof typeof POOL_DEFAULTS)[]) {
    const v = o[name];
    if (!Number.isFinite(v) || v < 0) throw new RangeError(`pool option ${name} must be a number >= 0, not ${v}`);
  }
  return o;
}

function definedOnly<T extends object>(o: T): Partial<T> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>;
}
