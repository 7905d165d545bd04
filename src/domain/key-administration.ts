import type { Clock } from "./clock";
import { invalidArgument } from "./errors";
import type { KeyChanges } from "./key-changes";
import { entryFromRecord, newEntry, toStatus, type KeyEntry } from "./key-entry";
import type { KeyHasher } from "./key-hash";
import { checkSpec, disableReason, hashCollision } from "./key-spec-check";
import type { KeyTable } from "./key-table";
import type { FamilyTable } from "./model-families";
import { isProviderId, providerInfo } from "./providers";
import type { DisableState, KeyRecord, KeySpec, KeyStatus } from "./types";
import { checkKeySecret } from "./validation";

/**
 * The operator's changes to the pool: adding keys (with their default families), removing,
 * disabling and enabling them, and restoring them from storage at start.
 */
export class KeyAdministration {
  constructor(
    private readonly clock: Clock,
    private readonly keys: KeyTable,
    private readonly changes: KeyChanges,
    private readonly families: FamilyTable,
    private readonly keyHasher: KeyHasher,
    private readonly serveWaiters: () => void,
  ) {}

  /**
   * Adds keys. A key already in the pool (same provider, secret and organization) counts as a
   * duplicate and keeps its state. All-or-nothing: one bad spec rejects the whole call.
   */
  addKeys(specs: KeySpec[]): { keyHashes: string[]; added: number; duplicates: number } {
    if (!Array.isArray(specs)) throw invalidArgument("keys must be a list");
    // New entries go straight into the key map, so that a large start holds one map of keys,
    // and are taken out again if a later spec is refused. They are indexed and announced only
    // once every spec has passed.
    const byHash = this.keys.byHash;
    const fresh: KeyEntry[] = [];
    const keyHashes: string[] = new Array(specs.length);
    let duplicates = 0;
    try {
      for (let i = 0; i < specs.length; i++) {
        const { keyHash, key, provider, organizationId, modelFamilies, trial, familiesPinned } = checkSpec(
          specs[i],
          i,
          this.families,
          this.keyHasher,
        );
        keyHashes[i] = keyHash;
        const existing = byHash.get(keyHash);
        if (existing) {
          // A key the checker bound to its default organization keeps the hash of its spec.
          if (existing.secret === key && existing.provider === provider) {
            duplicates++;
            continue;
          }
          throw hashCollision(i, keyHash);
        }
        const entry = newEntry({
          secret: key,
          keyHash,
          provider,
          modelFamilies,
          organizationId,
          trial,
          familiesPinned,
        });
        this.keys.put(entry);
        fresh.push(entry);
      }
    } catch (error) {
      for (const entry of fresh) this.keys.drop(entry.keyHash);
      throw error;
    }
    const now = this.clock.now();
    for (const entry of fresh) this.changes.commit(entry, "added", "add", false, now);
    if (fresh.length > 0) this.serveWaiters();
    return { keyHashes, added: fresh.length, duplicates };
  }

  /** Its open leases stay in the book until they end; they no longer match any key. */
  removeKey(keyHash: string): void {
    this.changes.remove(this.keys.mustGet(keyHash));
  }

  disableKey(keyHash: string, state: DisableState = "disabled", reason?: string): KeyStatus {
    const text = disableReason(state, reason);
    const entry = this.keys.mustGet(keyHash);
    entry.state = state;
    entry.stateReason = text;
    entry.adminStamp = this.keys.nextAdminStamp();
    this.changes.commit(entry, "disabled", "remove", true);
    return toStatus(entry);
  }

  /** The operator's word: brings a key back to ACTIVE from any state (nothing else revives REVOKED). */
  enableKey(keyHash: string): KeyStatus {
    const entry = this.keys.mustGet(keyHash);
    entry.adminStamp = this.keys.nextAdminStamp();
    if (entry.state !== "active") {
      entry.state = "active";
      entry.stateReason = "";
      this.changes.commit(entry, "enabled", "add", true);
    }
    return toStatus(entry);
  }

  /** Storage at start: adds or overwrites keys with their full state. Open leases are not restored. */
  restore(records: KeyRecord[]): void {
    const entries = records.map((record, i) => {
      if (!isProviderId(record?.provider)) throw invalidArgument(`records[${i}]: unknown provider`);
      checkKeySecret(record.key, `records[${i}]`, providerInfo(record.provider));
      if (typeof record.keyHash !== "string" || record.keyHash.length === 0) {
        throw invalidArgument(`records[${i}]: key hash missing`);
      }
      return entryFromRecord(record);
    });
    const now = this.clock.now();
    for (const entry of entries) {
      const old = this.keys.byHash.get(entry.keyHash);
      if (old) this.keys.index.remove(old);
      this.keys.put(entry);
      this.changes.commit(entry, "restored", entry.state === "active" ? "add" : "none", false, now);
    }
    this.serveWaiters();
  }
}
