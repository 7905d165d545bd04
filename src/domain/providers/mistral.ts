import { PLAIN_KEY } from "./credential";
import type { ProviderInfo } from "./provider";

/**
 * Mistral (api.mistral.ai). Families follow the tiers Mistral prices and limits separately; the
 * open-weight names map to the tier they compete in, and mistral-embed rides with tiny.
 */
export const mistral: ProviderInfo = {
  id: "mistral",
  displayName: "Mistral",
  hashPrefix: "mis-",
  defaultFamilies: ["mistral-tiny", "mistral-small", "mistral-medium", "mistral-large", "codestral"],
  familyRules: [
    { pattern: /^mistral-embed/, family: "mistral-tiny" },
    { pattern: /^(?:mistral-tiny|open-mistral-7b|open-mistral-nemo)/, family: "mistral-tiny" },
    { pattern: /^(?:mistral-small|ministral-|open-mixtral-8x7b)/, family: "mistral-small" },
    { pattern: /^mistral-medium/, family: "mistral-medium" },
    { pattern: /^(?:mistral-large|pixtral-large|open-mixtral-8x22b)/, family: "mistral-large" },
    { pattern: /^codestral/, family: "codestral" },
  ],
  embeddingModels: /^mistral-embed/,
  // Answers carry x-ratelimit-remaining-tokens-minute, -tokens-month, -req-minute and the like,
  // but no reset: an exhausted count with no reset leaves the key as it is, and the 429 that
  // follows cools it down.
  rateLimitHeaders: {
    remaining: /^x-ratelimit-remaining-(.+)$/,
    reset: /(?!)/,
    resetFormat: "go-duration",
  },
  credential: PLAIN_KEY,
  role: "vendor",
};
