/**
 * Start-up: merges the configured keys (environment, keys file) with the stored ones by key hash.
 *
 * - stored and still configured: keeps its stored state (usage, cooldown, revocation...); the
 *   configuration still decides the families and the trial flag when it states them;
 * - stored, added at run time by AddKeys: stays, configured or not;
 * - stored from the configuration, no longer configured: leaves the pool (logged by hash); its
 *   row stays, so that it comes back with its history if it is configured again;
 * - removed by RemoveKey: stays out, even if still configured (AddKeys brings it back);
 * - configured, never stored: added as a new key.
 */
import { hashKey, type KeyHasher } from "../domain/key-hash";
import type { KeyRecord, KeySpec } from "../domain/types";
import type { StoredKey } from "./state-store";
import { sameList } from "../domain/same-list";

export interface RestorePlan {
  /** Stored keys that go back into the pool (pool.restore), in-flight leases cleared. */
  records: KeyRecord[];
  /** Configured keys never stored: pool.addKeys. */
  newSpecs: KeySpec[];
  /** Stored configured keys that left the configuration: they stay out of the pool. */
  leftConfiguration: string[];
  /** Configured keys an operator removed with RemoveKey: they stay out of the pool. */
  removedButConfigured: string[];
  /** Restored keys whose families or trial flag the configuration changed: to write back. */
  changedByConfiguration: string[];
  /** Configured keys named more than once (counted once). */
  configuredDuplicates: number;
}

/** `stored` is consumed: the records of the keys that go back are changed in place and handed on. */
export function planRestore(
  stored: readonly StoredKey[],
  configured: readonly KeySpec[],
  hasher: KeyHasher = hashKey,
): RestorePlan {
  if (stored.length === 0) return planFirstStart(configured, hasher);
  const specs = new Map<string, KeySpec>();
  for (const spec of configured) {
    // The pool trims the secret before hashing it; so does this.
    const keyHash = hasher(spec.provider, spec.key.trim(), spec.organizationId ?? "");
    if (!specs.has(keyHash)) specs.set(keyHash, spec);
  }
  const plan: RestorePlan = {
    records: [],
    newSpecs: [],
    leftConfiguration: [],
    removedButConfigured: [],
    changedByConfiguration: [],
    configuredDuplicates: configured.length - specs.size,
  };
  // A configured key found among the stored ones leaves `specs`: what remains is new.
  for (const entry of stored) {
    const keyHash = entry.record.keyHash;
    const spec = specs.get(keyHash);
    if (spec) specs.delete(keyHash);
    if (entry.removedAt > 0) {
      if (spec) plan.removedButConfigured.push(keyHash);
      continue;
    }
    if (!spec && entry.origin === "config") {
      plan.leftConfiguration.push(keyHash);
      continue;
    }
    const record = restoredRecord(entry.record, spec);
    if (record.changed) plan.changedByConfiguration.push(keyHash);
    plan.records.push(record.record);
  }
  for (const spec of specs.values()) plan.newSpecs.push(spec);
  return plan;
}

/**
 * Nothing stored (a new state file, or one no key has changed in yet): every configured key is
 * new. The same plan as the general case, with a set of the keys' hashes instead of a map of
 * their specs.
 */
function planFirstStart(configured: readonly KeySpec[], hasher: KeyHasher): RestorePlan {
  const seen = new Set<string>();
  const newSpecs: KeySpec[] = [];
  for (const spec of configured) {
    const keyHash = hasher(spec.provider, spec.key.trim(), spec.organizationId ?? "");
    if (seen.has(keyHash)) continue;
    seen.add(keyHash);
    newSpecs.push(spec);
  }
  return {
    records: [],
    newSpecs,
    leftConfiguration: [],
    removedButConfigured: [],
    changedByConfiguration: [],
    configuredDuplicates: configured.length - newSpecs.length,
  };
}

/**
 * The record to restore: the stored one itself, changed in place (storage hands each start a
 * freshly read record that nothing else holds, so a copy would only cost a large restart time),
 * and whether the configuration changed its families or trial flag.
 */
function restoredRecord(record: KeyRecord, spec: KeySpec | undefined): { record: KeyRecord; changed: boolean } {
  let changed = false;
  // Leases do not survive a restart: nobody will end them.
  record.inFlight = 0;
  if (spec?.modelFamilies && spec.modelFamilies.length > 0 && !sameList(spec.modelFamilies, record.modelFamilies)) {
    record.modelFamilies = [...spec.modelFamilies];
    changed = true;
  }
  // The operator's families win over the key checker's, as they do for a key added by AddKeys.
  const pinned = (spec?.modelFamilies?.length ?? 0) > 0;
  if (spec && pinned !== (record.familiesPinned === true)) {
    record.familiesPinned = pinned;
    changed = true;
  }
  if (spec?.trial !== undefined && spec.trial !== record.trial) {
    record.trial = spec.trial;
    changed = true;
  }
  return { record, changed };
}
