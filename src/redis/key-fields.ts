/**
 * A key as Redis holds it: one hash per key with short field names (docs/redis-layout.md), and
 * beside it the key's status packed as one JSON array, which the scripts (pool-scripts.ts,
 * `packed`) write with every change and which the change stream and the snapshot carry. This file
 * reads that array back into the domain's KeyStatus. The secret (`k`) is never in it, only its
 * fingerprint.
 */
import * as crypto from "node:crypto";
import type { KeyState, KeyStatus, ProviderId, TokenUsage } from "../domain/types";

/**
 * [key_hash, provider, families ("a,b"), organization, trial (0/1), state, reason, hold_until,
 * cooldown_until, rate_limited_at, last_used, last_checked, prompt_count, in_flight, lease_count,
 * families pinned (0/1), [family, input tokens, output tokens, prompts, ...], the secret's
 * fingerprint]
 */
export type PackedStatus = [string, string, string, string, number, string, string, number, number, number, number, number, number, number, number, number, (string | number)[], string];

/** Where the fingerprint is in a packed status. */
export const FINGERPRINT = 17;

/**
 * A secret's fingerprint as the scripts compute it (`fingerprint`: 16 hex digits of its SHA-1):
 * a configured key whose hash is in the pool is the same key when the fingerprints agree, and a
 * different secret under the same hash (a collision) when they do not.
 */
export function secretFingerprint(secret: string): string {
  return sha1Hex(secret).slice(0, 16);
}

/** crypto.hash (Node 20.12+) makes no Hash object: a configured pool's keys are fingerprinted at start. */
const oneShotHash = (crypto as { hash?: (algorithm: string, data: string, encoding: "hex") => string }).hash;
const sha1Hex: (text: string) => string = oneShotHash
  ? (text) => oneShotHash("sha1", text, "hex")
  : (text) => crypto.createHash("sha1").update(text).digest("hex");

/** The status of one packed array: positions, not names, so that a joining replica decodes 100,000 keys cheaply. */
export function statusFromPacked(p: PackedStatus): KeyStatus {
  const usage: Record<string, TokenUsage> = {};
  const u = p[16];
  for (let i = 0; i + 3 < u.length; i += 4) {
    usage[u[i] as string] = { inputTokens: u[i + 1] as number, outputTokens: u[i + 2] as number, prompts: u[i + 3] as number };
  }
  const holdUntil = p[7];
  const cooldownUntil = p[8];
  return {
    keyHash: p[0],
    provider: p[1] as ProviderId,
    modelFamilies: p[2] === "" ? [] : p[2].split(","),
    organizationId: p[3],
    trial: p[4] === 1,
    state: p[5] as KeyState,
    stateReason: p[6],
    readyAt: Math.max(holdUntil, cooldownUntil),
    holdUntil,
    cooldownUntil,
    rateLimitedAt: p[9],
    lastUsed: p[10],
    lastChecked: p[11],
    promptCount: p[12],
    usage,
    inFlight: p[13],
    leaseCount: p[14],
    familiesPinned: p[15] === 1,
  };
}

/** The status of one packed text (a script's answer). */
export function statusFromPackedText(text: string): KeyStatus {
  return statusFromPacked(JSON.parse(text) as PackedStatus);
}
