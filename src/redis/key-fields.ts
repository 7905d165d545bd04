/**
 * A key as Redis holds it: one hash per key, short field names (written once per key, so kept
 * short), numbers as decimal text; docs/redis-layout.md lists the fields. The scripts
 * (pool-scripts.ts) write them; this file reads them back into the domain's KeyStatus. The secret
 * (`k`) never leaves a script except in Lease's answer and the checker's subject.
 */
import type { KeyState, KeyStatus, ProviderId, TokenUsage } from "../domain/types";

const int = (value: string | undefined) => (value === undefined ? 0 : Number(value));

/** The status in a flat [field, value, ...] list (HGETALL without the secret). */
export function statusFromFields(flat: readonly string[]): KeyStatus {
  const fields = new Map<string, string>();
  let usage: Record<string, TokenUsage> | undefined;
  for (let i = 0; i + 1 < flat.length; i += 2) {
    const name = flat[i]!;
    const value = flat[i + 1]!;
    const colon = name.indexOf(":");
    if (colon > 0) {
      const family = name.slice(colon + 1);
      const u = ((usage ??= {})[family] ??= { inputTokens: 0, outputTokens: 0, prompts: 0 });
      const kind = name.slice(0, colon);
      if (kind === "ui") u.inputTokens = Number(value);
      else if (kind === "uo") u.outputTokens = Number(value);
      else if (kind === "up") u.prompts = Number(value);
    } else {
      fields.set(name, value);
    }
  }
  const holdUntil = int(fields.get("hu"));
  const cooldownUntil = int(fields.get("cu"));
  const families = fields.get("f") ?? "";
  return {
    keyHash: fields.get("h") ?? "",
    provider: (fields.get("p") ?? "") as ProviderId,
    modelFamilies: families === "" ? [] : families.split(","),
    organizationId: fields.get("o") ?? "",
    trial: fields.get("tr") === "1",
    state: (fields.get("st") ?? "active") as KeyState,
    stateReason: fields.get("sr") ?? "",
    readyAt: Math.max(holdUntil, cooldownUntil),
    holdUntil,
    cooldownUntil,
    rateLimitedAt: int(fields.get("rl")),
    lastUsed: int(fields.get("lu")),
    lastChecked: int(fields.get("lc")),
    promptCount: int(fields.get("pc")),
    usage: usage ?? {},
    inFlight: int(fields.get("inf")),
    leaseCount: int(fields.get("lec")),
    familiesPinned: fields.get("pin") === "1",
  };
}
