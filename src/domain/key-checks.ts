import type { Clock } from "./clock";
import type { CheckSubject, FindingResult, KeyFinding } from "./key-check";
import type { KeyChanges } from "./key-changes";
import { internFamilies, newEntry } from "./key-entry";
import type { KeyHasher } from "./key-hash";
import type { KeyTable } from "./key-table";
import type { FamilyTable } from "./model-families";
import type { ProviderId } from "./types";
import { LIMITS, checkText } from "./validation";

/**
 * The key checker's side of the pool (docs/checker.md): what it is given to check a key, its
 * findings applied as pool changes (a key's clones with it, in one turn, so that storage commits
 * them together), and RecheckKeys marking keys for a check.
 */
export class KeyChecks {
  constructor(
    private readonly clock: Clock,
    private readonly keys: KeyTable,
    private readonly changes: KeyChanges,
    private readonly families: FamilyTable,
    private readonly keyHasher: KeyHasher,
    private readonly serveWaiters: () => void,
  ) {}

  /** What the checker needs to check a key; undefined when it is gone or DISABLED by an operator. */
  subject(keyHash: string): CheckSubject | undefined {
    const entry = this.keys.byHash.get(keyHash);
    if (!entry || entry.state === "disabled") return undefined;
    return {
      keyHash,
      provider: entry.provider,
      secret: entry.secret,
      organizationId: entry.organizationId,
      trial: entry.trial,
      familiesPinned: entry.familiesPinned,
      firstCheck: entry.lastChecked === 0,
      adminStamp: entry.adminStamp,
    };
  }

  /**
   * Applies a completed check. Dropped when the key left the pool, or an operator disabled,
   * enabled or replaced it after the check started. Throws (changing nothing) when an
   * organization id is past its limit.
   */
  apply(subject: CheckSubject, finding: KeyFinding): FindingResult {
    const entry = this.keys.byHash.get(subject.keyHash);
    if (!entry || entry.secret !== subject.secret) return { applied: false, why: "removed" };
    if (entry.state === "disabled") return { applied: false, why: "disabled" };
    if (entry.adminStamp !== subject.adminStamp) return { applied: false, why: "operator_changed" };
    const unbound = entry.organizationId === "";
    const bind = unbound && finding.organizationId ? finding.organizationId : undefined;
    const cloneOrganizations = unbound ? [...new Set(finding.cloneOrganizations ?? [])].filter((o) => o !== "" && o !== bind) : [];
    if (bind !== undefined) checkText("organization id", bind, LIMITS.organizationIdBytes);
    for (const organizationId of cloneOrganizations) checkText("organization id", organizationId, LIMITS.organizationIdBytes);

    const now = this.clock.now();
    // Out of the index while its families and trial flag change: the index files a key by both.
    this.keys.index.remove(entry);
    const families = knownFamilies(this.families, entry.provider, finding.modelFamilies);
    if (families && !entry.familiesPinned) {
      entry.modelFamilies = internFamilies(families);
      entry.has32k = families.includes("gpt4-32k");
    }
    if (finding.trial !== undefined) entry.trial = finding.trial;
    if (bind !== undefined) entry.organizationId = bind;
    if (finding.state === "active") {
      entry.state = "active";
      entry.stateReason = "";
    } else if (finding.state) {
      entry.state = finding.state;
      entry.stateReason = findingReason(finding.state, finding.reason);
    }
    entry.lastChecked = Math.max(1, now);
    this.changes.commit(entry, "checked", entry.state === "active" ? "add" : "none", false, now);

    const clones: string[] = [];
    for (const organizationId of cloneOrganizations) {
      const keyHash = this.keyHasher(entry.provider, entry.secret, organizationId);
      if (this.keys.byHash.has(keyHash)) continue;
      const clone = newEntry({
        secret: entry.secret,
        keyHash,
        provider: entry.provider,
        modelFamilies: entry.modelFamilies,
        organizationId,
        trial: entry.trial,
        familiesPinned: entry.familiesPinned,
      });
      this.keys.put(clone);
      this.changes.commit(clone, "added", "add", false, now);
      clones.push(keyHash);
    }
    this.serveWaiters();
    return { applied: true, clones };
  }

  /**
   * RecheckKeys: marks the named keys (all keys when none is named) as never checked, so that
   * the checker takes them first. Keys an operator DISABLED are left alone (EnableKey first).
   * All or nothing: an unknown hash is NotFound and marks nothing. Returns the keys marked.
   */
  markForCheck(keyHashes: readonly string[] = []): number {
    const entries = keyHashes.length > 0 ? [...new Set(keyHashes)].map((h) => this.keys.mustGet(h)) : [...this.keys.byHash.values()];
    let marked = 0;
    for (const entry of entries) {
      if (entry.state === "disabled") continue;
      marked++;
      if (entry.lastChecked === 0) continue;
      entry.lastChecked = 0;
      this.changes.commit(entry, "check_requested", "none", false);
    }
    return marked;
  }
}

/** The finding's families that the table knows, in order without repeats; undefined when none. */
export function knownFamilies(table: FamilyTable, provider: ProviderId, families: readonly string[] | undefined): string[] | undefined {
  if (!families) return undefined;
  const known = table.familiesOf(provider);
  const kept = [...new Set(families)].filter((f) => known.has(f));
  return kept.length > 0 ? kept : undefined;
}

/** The state reason a finding of a revoked or over-quota key leaves: the upstream's words, cut to the limit. */
export function findingReason(state: "revoked" | "over_quota", reason: string | undefined): string {
  return truncated(reason || `the upstream reported the key ${state.replace("_", " ")}`);
}

/** A reason cut to the contract's limit (upstream words can be long). */
function truncated(text: string): string {
  if (Buffer.byteLength(text, "utf8") <= LIMITS.reasonBytes) return text;
  return Buffer.from(text, "utf8").subarray(0, LIMITS.reasonBytes - 3).toString("utf8").replace(/\uFFFD$/, "") + "...";
}
