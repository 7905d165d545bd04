/**
 * How the watch hub files watches by their filter (the filter rule itself, shared with ListKeys,
 * is domain/key-filter.ts), so that a change to a key visits only the watches that could want it.
 */
import type { KeyAttributes, KeyFilter } from "../domain/key-filter";

const ANY = "*";
const bucket = (provider: string, family: string) => `${provider}\u0000${family}`;

/** The index buckets a filter is filed under: one per wanted family, or one "any family". */
export function filterBuckets(filter: KeyFilter): string[] {
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
