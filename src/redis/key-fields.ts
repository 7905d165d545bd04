/**
 * A key as Redis holds it: one hash per key, short field names (written once per key, so kept
 * short), numbers as decimal text; docs/redis-layout.md lists the fields. The scripts
 * (pool-scripts.ts) write them; this file reads them back into the domain's KeyStatus. The secret
 * (`k`) never leaves a script except in Lease's answer and the checker's subject.
 */
import type { KeyState, KeyStatus, ProviderId, TokenUsage } from "../domain/types";

/**
 * The status in a flat [field, value, ...] list (HGETALL, the secret blanked). Read field by
 * field into the status itself: a joining replica decodes every key of the pool this way.
 */
export function statusFromFields(flat: readonly string[]): KeyStatus {
  const status: KeyStatus = {
    keyHash: "",
    provider: "" as ProviderId,
    modelFamilies: [],
    organizationId: "",
    trial: false,
    state: "active" as KeyState,
    stateReason: "",
    readyAt: 0,
    holdUntil: 0,
    cooldownUntil: 0,
    rateLimitedAt: 0,
    lastUsed: 0,
    lastChecked: 0,
    promptCount: 0,
    usage: {},
    inFlight: 0,
    leaseCount: 0,
    familiesPinned: false,
  };
  for (let i = 0; i + 1 < flat.length; i += 2) {
    const name = flat[i]!;
    const value = flat[i + 1]!;
    switch (name) {
      case "h": status.keyHash = value; break;
      case "p": status.provider = value as ProviderId; break;
      case "f": status.modelFamilies = value === "" ? [] : value.split(","); break;
      case "o": status.organizationId = value; break;
      case "tr": status.trial = value === "1"; break;
      case "st": status.state = value as KeyState; break;
      case "sr": status.stateReason = value; break;
      case "hu": status.holdUntil = Number(value); break;
      case "cu": status.cooldownUntil = Number(value); break;
      case "rl": status.rateLimitedAt = Number(value); break;
      case "lu": status.lastUsed = Number(value); break;
      case "lc": status.lastChecked = Number(value); break;
      case "pc": status.promptCount = Number(value); break;
      case "inf": status.inFlight = Number(value); break;
      case "lec": status.leaseCount = Number(value); break;
      case "pin": status.familiesPinned = value === "1"; break;
      default: {
        const colon = name.indexOf(":");
        if (colon <= 0) break;
        const family = name.slice(colon + 1);
        const u: TokenUsage = (status.usage[family] ??= { inputTokens: 0, outputTokens: 0, prompts: 0 });
        const kind = name.slice(0, colon);
        if (kind === "ui") u.inputTokens = Number(value);
        else if (kind === "uo") u.outputTokens = Number(value);
        else if (kind === "up") u.prompts = Number(value);
      }
    }
  }
  status.readyAt = Math.max(status.holdUntil, status.cooldownUntil);
  return status;
}
