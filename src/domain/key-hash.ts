import { createHash } from "node:crypto";
import { providerInfo } from "./providers";
import type { ProviderId } from "./types";

/** Computes a key's public id. Injectable so that tests can force a collision. */
export type KeyHasher = (provider: ProviderId, key: string, organizationId: string) => string;

/**
 * The provider's prefix and the first 16 hex digits (64 bits) of SHA-256 over the key, or over
 * key + organization id for an organization clone. The original kept 8 hex digits, which
 * collide in pools of tens of thousands of keys.
 */
export const hashKey: KeyHasher = (provider, key, organizationId) =>
  providerInfo(provider).hashPrefix +
  createHash("sha256")
    .update(key + organizationId)
    .digest("hex")
    .slice(0, 16);

/**
 * A number that orders hashes of one provider as their strings do (ties possible): the seven
 * ASCII characters after the provider prefix, base 128. Heaps compare it before falling back to
 * the string, which saves most string comparisons. NaN when the hash does not have the shape
 * (then only the string is compared).
 */
export function hashSortRank(provider: ProviderId, keyHash: string): number {
  const prefix = providerInfo(provider).hashPrefix;
  if (!keyHash.startsWith(prefix)) return NaN;
  let rank = 0;
  for (let i = 0; i < 7; i++) {
    const c = prefix.length + i < keyHash.length ? keyHash.charCodeAt(prefix.length + i) : 0;
    if (c >= 128) return NaN;
    rank = rank * 128 + c;
  }
  return rank;
}
