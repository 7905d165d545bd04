import type { ProviderId } from "./types";

/**
 * Which keys a ListKeys call or a watch wants: those of one provider (absent: every provider)
 * that serve any of the given families (absent or empty: every family).
 */
export interface KeyFilter {
  provider?: ProviderId;
  modelFamilies?: readonly string[];
}

/** The part of a key a filter looks at. */
export interface KeyAttributes {
  provider: ProviderId;
  modelFamilies: readonly string[];
}

export function keyMatches(filter: KeyFilter, key: KeyAttributes): boolean {
  if (filter.provider !== undefined && filter.provider !== key.provider) return false;
  const wanted = filter.modelFamilies;
  if (!wanted || wanted.length === 0) return true;
  return key.modelFamilies.some((family) => wanted.includes(family));
}
