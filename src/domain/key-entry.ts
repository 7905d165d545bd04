import { AS_DOUBLE } from "./double-fields";
import { hashSortRank } from "./key-hash";
import { sameList } from "./same-list";
import { NO_NODES, type IndexedKey } from "./selection-index";
import type { KeyRecord, KeyState, KeyStatus, ProviderId, TokenUsage } from "./types";

/**
 * The pool's own mutable record of a key. Never leaves the pool: callers get fresh KeyStatus
 * copies (toStatus), so nothing outside can change a key behind the indexes' back.
 */
export interface KeyEntry extends IndexedKey {
  readonly secret: string;
  /** Changed only while the key is out of the selection index (the index files it by family). */
  modelFamilies: readonly string[];
  trial: boolean;
  has32k: boolean;
  organizationId: string;
  /** The operator named the families: the key checker keeps them. */
  readonly familiesPinned: boolean;
  /**
   * Changes with every operator action on the key (disable, enable): a check that started
   * under another stamp reports on a key the operator has since decided about, and is dropped.
   */
  adminStamp: number;
  state: KeyState;
  stateReason: string;
  holdUntil: number;
  cooldownUntil: number;
  /** Always max(holdUntil, cooldownUntil); kept as a field because the heaps compare it. */
  readyAt: number;
  lastUsed: number;
  rateLimitedAt: number;
  lastChecked: number;
  promptCount: number;
  /**
   * Tokens by model family, in the order the families were first used; made at the key's first
   * IncrementUsage, because most keys of a large pool have none. A short list, not a Map: a key
   * serves a few families, and a list of a few is smaller than a Map.
   */
  usage: FamilyUsage[] | undefined;
  inFlight: number;
  leaseCount: number;
}

/**
 * One frozen array per distinct list of families, shared by every key that serves exactly that
 * list: a pool of 100,000 keys has a handful of distinct lists, not 100,000 arrays. Entries never
 * change their list (a new list is a new interned array), and statuses get their own copy.
 */
const internedFamilies = new Map<string, readonly string[]>();
/** Distinct lists kept at most; past it, a list is frozen but not shared (input is operator data). */
const INTERNED_FAMILIES_LIMIT = 4096;

let lastInterned: readonly string[] = Object.freeze([]);

export function internFamilies(families: readonly string[]): readonly string[] {
  // Keys come in runs with the same list: compare with the last one before building an id.
  if (families === lastInterned || sameList(lastInterned, families)) return lastInterned;
  const id = families.join("\u0000");
  const known = internedFamilies.get(id);
  if (known && sameList(known, families)) return (lastInterned = known);
  const list = Object.freeze([...families]);
  if (internedFamilies.size < INTERNED_FAMILIES_LIMIT) internedFamilies.set(id, list);
  return (lastInterned = list);
}


/** One family's token counts on one key. */
export interface FamilyUsage extends TokenUsage {
  readonly family: string;
}

/** The key's counts for `family`, made (at zero) on first use. */
export function usageOf(entry: KeyEntry, family: string): FamilyUsage {
  const list = (entry.usage ??= []);
  for (const u of list) if (u.family === family) return u;
  const fresh: FamilyUsage = { family, inputTokens: 0, outputTokens: 0, prompts: 0 };
  list.push(fresh);
  return fresh;
}

export function newEntry(fields: {
  secret: string;
  keyHash: string;
  provider: ProviderId;
  modelFamilies: readonly string[];
  organizationId: string;
  trial: boolean;
  familiesPinned?: boolean;
}): KeyEntry {
  const entry: KeyEntry = {
    secret: fields.secret,
    keyHash: fields.keyHash,
    provider: fields.provider,
    modelFamilies: internFamilies(fields.modelFamilies),
    organizationId: fields.organizationId,
    trial: fields.trial,
    has32k: fields.modelFamilies.includes("gpt4-32k"),
    familiesPinned: fields.familiesPinned === true,
    adminStamp: 0,
    hashRank: hashSortRank(fields.provider, fields.keyHash),
    state: "active",
    stateReason: "",
    holdUntil: AS_DOUBLE,
    cooldownUntil: AS_DOUBLE,
    readyAt: AS_DOUBLE,
    rateLimitedAt: AS_DOUBLE,
    lastUsed: AS_DOUBLE,
    lastChecked: AS_DOUBLE,
    promptCount: 0,
    usage: undefined,
    inFlight: 0,
    leaseCount: 0,
    nodes: NO_NODES,
  };
  entry.holdUntil = 0;
  entry.cooldownUntil = 0;
  entry.readyAt = 0;
  entry.rateLimitedAt = 0;
  entry.lastUsed = 0;
  entry.lastChecked = 0;
  return entry;
}

/** An entry rebuilt from storage. Open leases do not survive a restart, so in_flight starts at 0. */
export function entryFromRecord(record: KeyRecord): KeyEntry {
  const entry = newEntry({
    secret: record.key,
    keyHash: record.keyHash,
    provider: record.provider,
    modelFamilies: record.modelFamilies,
    organizationId: record.organizationId ?? "",
    trial: record.trial,
    familiesPinned: record.familiesPinned,
  });
  entry.state = record.state;
  entry.stateReason = record.stateReason ?? "";
  entry.holdUntil = record.holdUntil ?? 0;
  entry.cooldownUntil = record.cooldownUntil ?? 0;
  entry.readyAt = readyAtOf(entry);
  entry.rateLimitedAt = record.rateLimitedAt ?? 0;
  entry.lastUsed = record.lastUsed ?? 0;
  entry.lastChecked = record.lastChecked ?? 0;
  entry.promptCount = record.promptCount ?? 0;
  const stored = Object.entries(record.usage ?? {});
  if (stored.length > 0) {
    entry.usage = stored.map(([family, u]) => ({
      family,
      inputTokens: u.inputTokens,
      outputTokens: u.outputTokens,
      prompts: u.prompts,
    }));
  }
  entry.leaseCount = record.leaseCount ?? 0;
  return entry;
}

/** When the key may next be leased: the later of its hold and its cooldown. */
export function readyAtOf(entry: Pick<KeyEntry, "holdUntil" | "cooldownUntil">): number {
  return Math.max(entry.holdUntil, entry.cooldownUntil);
}

/**
 * The status of a key nothing has happened to yet, as newEntry makes it: what storage writes for
 * a key whose status it was not given.
 */
export function freshKeyStatus(keyHash: string, provider: ProviderId, modelFamilies: readonly string[]): KeyStatus {
  return toStatus(newEntry({ secret: "", keyHash, provider, modelFamilies, organizationId: "", trial: false }));
}

/** A fresh, detached status (never the secret). */
export function toStatus(entry: KeyEntry): KeyStatus {
  const usage: Record<string, TokenUsage> = {};
  if (entry.usage) {
    for (const u of entry.usage) {
      usage[u.family] = { inputTokens: u.inputTokens, outputTokens: u.outputTokens, prompts: u.prompts };
    }
  }
  return {
    keyHash: entry.keyHash,
    provider: entry.provider,
    modelFamilies: [...entry.modelFamilies],
    organizationId: entry.organizationId,
    trial: entry.trial,
    state: entry.state,
    stateReason: entry.stateReason,
    readyAt: entry.readyAt,
    holdUntil: entry.holdUntil,
    cooldownUntil: entry.cooldownUntil,
    rateLimitedAt: entry.rateLimitedAt,
    lastUsed: entry.lastUsed,
    lastChecked: entry.lastChecked,
    promptCount: entry.promptCount,
    usage,
    inFlight: entry.inFlight,
    leaseCount: entry.leaseCount,
    familiesPinned: entry.familiesPinned,
  };
}
