/**
 * The families of a list of model ids, as a models endpoint returns it: by the same family table
 * Lease uses (operator rows included), in the table's order; ids of no family are skipped.
 */
import type { FamilyTable } from "../domain/model-families";
import type { ProviderId } from "../domain/types";

/** Ids read from one answer at most (a models list holds a few hundred). */
export const MAX_MODEL_IDS = 5000;

export function familiesOfModels(provider: ProviderId, ids: Iterable<string>, families: FamilyTable): string[] {
  const found = new Set<string>();
  let read = 0;
  for (const id of ids) {
    if (++read > MAX_MODEL_IDS) break;
    const family = families.familyFor(provider, id);
    if (family !== undefined) found.add(family);
  }
  const ordered: string[] = [];
  for (const rule of families.rulesOf(provider)) {
    if (found.has(rule.family) && !ordered.includes(rule.family)) ordered.push(rule.family);
  }
  return ordered;
}

/** The string field `field` of each item of the array `list` in a JSON body; other items are skipped. */
export function stringsOf(body: unknown, list: string, field: string): string[] {
  const items = (body as Record<string, unknown> | undefined)?.[list];
  if (!Array.isArray(items)) return [];
  const out: string[] = [];
  for (const item of items.slice(0, MAX_MODEL_IDS)) {
    const value = (item as Record<string, unknown> | null)?.[field];
    if (typeof value === "string") out.push(value);
  }
  return out;
}
