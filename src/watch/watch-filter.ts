import type { ProviderId } from "../domain/types";

/**
 * Which keys a watch wants: those of one provider (absent: every provider) that serve any of the
 * given families (empty: every family). The same rule as ListKeys.
 */
export interface WatchFilter {
  provider?: ProviderId;
  modelFamilies?: readonly string[];
}

/** The part of a key a filter looks at. */
export interface KeyAttributes {
  provider: ProviderId;
  modelFamilies: readonly string[];
}

export function matchesFilter(filter: WatchFilter, key: KeyAttributes): boolean {
  if (filter.provider !== undefined && filter.provider !== key.provider) return false;
  const wanted = filter.modelFamilies;
  if (!wanted || wanted.length === 0) return true;
  return key.modelFamilies.some((family) => wanted.includes(family));
}

export function sameAttributes(a: KeyAttributes, b: KeyAttributes): boolean {
  if (a.provider !== b.provider || a.modelFamilies.length !== b.modelFamilies.length) return false;
  return a.modelFamilies.every((family, i) => family === b.modelFamilies[i]);
}

const ANY = "*";
const bucket = (provider: string, family: string) => `${provider}\u0000${family}`;

/** The index buckets a filter is filed under: one per wanted family, or one "any family". */
export function filterBuckets(filter: WatchFilter): string[] {
  const provider = filter.provider ?? ANY;
  const families = filter.modelFamilies && filter.modelFamilies.length > 0 ? filter.modelFamilies : [ANY];
  return [...new Set(families)].map((family) => bucket(provider, family));
}

/**
 * The buckets whose filters may match a key: so that a change to a key only visits the watches
 * that could want it, not every open watch.
 */
export function keyBuckets(key: KeyAttributes): string[] {
  const out = [bucket(ANY, ANY), bucket(key.provider, ANY)];
  for (const family of key.modelFamilies) out.push(bucket(ANY, family), bucket(key.provider, family));
  return out;
}
