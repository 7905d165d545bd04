import type { ProviderId } from "../types";
import { anthropic } from "./anthropic";
import { awsBedrock } from "./aws-bedrock";
import { azureOpenai } from "./azure-openai";
import { gcpVertex } from "./gcp-vertex";
import { googleAi } from "./google-ai";
import { mistral } from "./mistral";
import { openai } from "./openai";
import type { ProviderInfo } from "./provider";

export type { FamilyRule, ProviderInfo, RateLimitHeaderScheme } from "./provider";
export { credentialProblem, joinCredential } from "./credential";

/**
 * Every provider, in the order used to infer a provider from a model name: the vendors first,
 * then the hosts (docs/keys-and-models.md, "How a model resolves").
 */
export const PROVIDERS: readonly ProviderInfo[] = [openai, anthropic, googleAi, mistral, azureOpenai, awsBedrock, gcpVertex];

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
