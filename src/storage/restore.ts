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

/**
 * What the plan decides beyond each stored key's record (RestorePlanner.take hands those out one
 * by one, in-flight leases cleared, for pool.restore).
 */
export interface RestorePlan {
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

/**
 * The plan made one stored key at a time, in any order, so that a start can put each slice of
 * stored keys into the pool while it reads the next one: the parsed rows of a large state file
 * are then never all alive together.
 */
export class RestorePlanner {
  /** The configured keys by hash; a configured key found among the stored ones leaves it. */
  private readonly specs = new Map<string, KeySpec>();
  private readonly configuredDuplicates: number;
  private readonly leftConfiguration: string[] = [];
  private readonly removedButConfigured: string[] = [];
  private readonly changedByConfiguration: string[] = [];

  constructor(configured: readonly KeySpec[], hasher: KeyHasher = hashKey) {
    for (const spec of configured) {
      // The pool trims the secret before hashing it; so does this.
      const keyHash = hasher(spec.provider, spec.key.trim(), spec.organizationId ?? "");
      if (!this.specs.has(keyHash)) this.specs.set(keyHash, spec);
    }
    this.configuredDuplicates = configured.length - this.specs.size;
  }

  /**
   * Decides one stored key: the record to restore (`entry.record` itself, changed in place), or
   * undefined when the key stays out of the pool.
   */
  take(entry: StoredKey): KeyRecord | undefined {
    const keyHash = entry.record.keyHash;
    const spec = this.specs.get(keyHash);
    if (spec) this.specs.delete(keyHash);
    if (entry.removedAt > 0) {
      if (spec) this.removedButConfigured.push(keyHash);
      return undefined;
    }
    if (!spec && entry.origin === "config") {
      this.leftConfiguration.push(keyHash);
      return undefined;
    }
    const record = restoredRecord(entry.record, spec);
    if (record.changed) this.changedByConfiguration.push(keyHash);
    return record.record;
  }

  /** Once every stored key was taken: the rest of the plan, with the configured keys never stored. */
  finish(): RestorePlan {
    return {
      newSpecs: [...this.specs.values()],
      leftConfiguration: this.leftConfiguration,
      removedButConfigured: this.removedButConfigured,
      changedByConfiguration: this.changedByConfiguration,
      configuredDuplicates: this.configuredDuplicates,
    };
  }
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
