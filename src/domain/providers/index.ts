import type { ProviderId } from "../types";
import { anthropic } from "./anthropic";
import { openai } from "./openai";
import type { ProviderInfo } from "./provider";

export type { FamilyRule, ProviderInfo, RateLimitHeaderScheme } from "./provider";

/** Every provider, in the order used to infer a provider from a model name. */
export const PROVIDERS: readonly ProviderInfo[] = [openai, anthropic];

const BY_ID = new Map<string, ProviderInfo>(PROVIDERS.map((p) => [p.id, p]));

export function isProviderId(value: unknown): value is ProviderId {
  return typeof value === "string" && BY_ID.has(value);
}

/** The provider's data; throws on an id that is not a provider (a programming error). */
export function providerInfo(id: ProviderId): ProviderInfo {
  const info = BY_ID.get(id);
  if (!info) throw new Error(`unknown provider ${JSON.stringify(id)}`);
  return info;
}
