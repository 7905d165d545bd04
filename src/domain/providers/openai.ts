import { PLAIN_KEY } from "./credential";
import type { ProviderInfo } from "./provider";

/**
 * OpenAI. The family table is ordered: more specific names first (gpt-4o-mini before gpt-4o,
 * gpt-4-32k before gpt-4, gpt-4.1-mini before gpt-4.1, o1-mini before o1).
 */
export const openai: ProviderInfo = {
  id: "openai",
  displayName: "OpenAI",
  hashPrefix: "oai-",
  // A new OpenAI key serves turbo and gpt4 unless its spec says otherwise (docs/keys-and-models.md,
  // "The families a key serves").
  defaultFamilies: ["turbo", "gpt4"],
  familyRules: [
    { pattern: /^text-embedding-/, family: "turbo" },
    { pattern: /^gpt-3\.5-turbo/, family: "turbo" },
    { pattern: /^gpt-4o-mini/, family: "turbo" },
    { pattern: /^gpt-4-32k/, family: "gpt4-32k" },
    { pattern: /^gpt-4-(?:turbo|1106|0125)/, family: "gpt4-turbo" },
    { pattern: /^gpt-4.*vision-preview$/, family: "gpt4-turbo" },
    { pattern: /^gpt-4(?:-0613|-0314)?$/, family: "gpt4" },
    { pattern: /^(?:gpt-4o|chatgpt-4o)/, family: "gpt4o" },
    { pattern: /^gpt-4\.1-mini/, family: "gpt41-mini" },
    { pattern: /^gpt-4\.1-nano/, family: "gpt41-nano" },
    { pattern: /^gpt-4\.1/, family: "gpt41" },
    { pattern: /^gpt-4\.5/, family: "gpt45" },
    { pattern: /^gpt-5(?:\.\d+)?-mini/, family: "gpt5-mini" },
    { pattern: /^gpt-5(?:\.\d+)?-nano/, family: "gpt5-nano" },
    { pattern: /^gpt-5/, family: "gpt5" },
    { pattern: /^o1-mini/, family: "o1-mini" },
    { pattern: /^o1/, family: "o1" },
    { pattern: /^o3-mini/, family: "o3-mini" },
    { pattern: /^o3/, family: "o3" },
    { pattern: /^o4-mini/, family: "o4-mini" },
    { pattern: /^(?:dall-e|gpt-image)/, family: "dall-e" },
  ],
  embeddingModels: /^text-embedding-/,
  rateLimitHeaders: {
    remaining: /^x-ratelimit-remaining-(.+)$/,
    reset: /^x-ratelimit-reset-(.+)$/,
    resetFormat: "go-duration",
  },
  credential: PLAIN_KEY,
  role: "vendor",
};
