import { openai } from "./openai";
import type { ProviderInfo } from "./provider";

/**
 * Azure OpenAI. A key is one deployment of one resource: the proxy calls
 * https://<resource>.openai.azure.com/openai/deployments/<deployment>/... with the API key. The
 * model a request names is the OpenAI model the deployment runs, so the families are OpenAI's.
 */
export const azureOpenai: ProviderInfo = {
  id: "azure",
  displayName: "Azure OpenAI",
  hashPrefix: "azu-",
  defaultFamilies: openai.defaultFamilies,
  familyRules: openai.familyRules,
  embeddingModels: openai.embeddingModels,
  // x-ratelimit-remaining-requests / -tokens on every answer; a 429 carries retry-after-ms and
  // retry-after, which are read for every provider.
  rateLimitHeaders: {
    remaining: /^x-ratelimit-remaining-(requests|tokens)$/,
    reset: /^x-ratelimit-reset-(requests|tokens)$/,
    resetFormat: "go-duration",
  },
  credential: {
    parts: [
      { field: "resourceName", label: "resource name", shape: /^[A-Za-z0-9][A-Za-z0-9-]{1,63}$/, shapeHint: "2 to 64 letters, digits and '-'" },
      { field: "deploymentId", label: "deployment id", shape: /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/, shapeHint: "1 to 64 letters, digits, '.', '_' and '-'" },
      { field: "apiKey", label: "api key" },
    ],
    maxBytes: 1024,
  },
  role: "host",
};
