import * as crypto from "node:crypto";
import { createHash } from "node:crypto";
import { providerInfo } from "./providers";
import type { ProviderId } from "./types";

/** Computes a key's public id. Injectable so that tests can force a collision. */
export type KeyHasher = (provider: ProviderId, key: string, organizationId: string) => string;

/**
 * The provider's prefix and the first 16 hex digits (64 bits) of SHA-256 over the key, or over
 * key + organization id for an organization clone: fewer digits collide in pools of tens of
 * thousands of keys.
 */
export const hashKey: KeyHasher = (provider, key, organizationId) =>
  flat(providerInfo(provider).hashPrefix + sha256Hex(key + organizationId).slice(0, 16));

/**
 * crypto.hash (Node 20.12+) makes no Hash object, which matters when a large pool's keys are
 * hashed at start. The same digest either way.
 */
const oneShotHash = (crypto as { hash?: (algorithm: string, data: string, encoding: "hex") => string }).hash;
const sha256Hex: (text: string) => string = oneShotHash
  ? (text) => oneShotHash("sha256", text, "hex")
  : (text) => createHash("sha256").update(text).digest("hex");

/**
 * `prefix + hex.slice(0, 16)` is, in V8, a concatenation pointing at a slice that keeps the whole
 * 64-digit hex text alive (storage's start-up plan keeps one hash per configured key). Reading a character flattens it into one string; the garbage
 * collector then drops the concatenation and the slice.
 */
function flat(text: string): string {
  // Kept in a module variable so that no optimizer drops the read as unused.
  flattenSink ^= text.charCodeAt(text.length - 1);
  return text;
}
let flattenSink = 0;

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
