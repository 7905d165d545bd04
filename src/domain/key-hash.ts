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
