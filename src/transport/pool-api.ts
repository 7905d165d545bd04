/**
 * What the transport needs from the pool: exactly KeyPool's public methods (src/domain/key-pool.ts)
 * that RPCs call. Written as an interface so that the services depend on behaviour, not on the
 * class; KeyPool satisfies it structurally.
 */
import type { ReportInput } from "../domain/key-pool";
import type { KeySpec, KeyStatus, Lease, ProviderId } from "../domain/types";

export interface PoolApi {
  addKeys(specs: KeySpec[]): { keyHashes: string[]; added: number; duplicates: number };
  removeKey(keyHash: string): void;
  disableKey(keyHash: string, state?: "disabled" | "revoked" | "over_quota", reason?: string): KeyStatus;
  enableKey(keyHash: string): KeyStatus;
  lease(req: { model: string; provider?: ProviderId }): Lease;
  leaseWhenReady(req: {
    model: string;
    provider?: ProviderId;
    maxWaitMs: number;
    signal?: AbortSignal;
  }): Promise<Lease>;
  reportRateLimit(r: ReportInput): { readyAt: number };
  incrementUsage(u: {
    keyHash: string;
    model: string;
    inputTokens: number;
    outputTokens: number;
    leaseId?: string;
  }): void;
  lockout(req: { model: string; provider?: ProviderId }): { lockoutMs: number; noActiveKeys: boolean };
  listKeys(filter?: { provider?: ProviderId; modelFamilies?: string[] }): KeyStatus[];
  /** RecheckKeys: marks keys for the key checker; returns how many. */
  markForCheck(keyHashes?: readonly string[]): number;
  readonly size: number;
}

/**
 * Awaited before acknowledging a call that changed the pool, so that an acknowledged change is
 * durable. The storage engineer supplies the real one; without storage it resolves at once.
 */
export interface Durability {
  flush(): Promise<void>;
}

export const noDurability: Durability = { flush: () => Promise.resolve() };
