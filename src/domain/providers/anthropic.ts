import { PLAIN_KEY } from "./credential";
import type { ProviderInfo } from "./provider";

/**
 * Anthropic. Families follow the model tiers an operator buys and limits separately: opus,
 * sonnet, haiku, and "claude" for everything else (claude-2, claude-instant, new names).
 */
export const anthropic: ProviderInfo = {
  id: "anthropic",
  displayName: "Anthropic",
  hashPrefix: "ant-",
  // An Anthropic key normally reaches every model, so a new key serves every family.
  defaultFamilies: ["claude", "claude-haiku", "claude-sonnet", "claude-opus"],
  familyRules: [
    { pattern: /^claude-.*opus/, family: "claude-opus" },
    { pattern: /^claude-.*sonnet/, family: "claude-sonnet" },
    { pattern: /^claude-.*haiku/, family: "claude-haiku" },
    { pattern: /^claude-/, family: "claude" },
  ],
  // Anthropic serves no embedding models.
  embeddingModels: /(?!)/,
  rateLimitHeaders: {
    remaining: /^anthropic-ratelimit-(requests|tokens|input-tokens|output-tokens)-remaining$/,
    reset: /^anthropic-ratelimit-(requests|tokens|input-tokens|output-tokens)-reset$/,
    resetFormat: "rfc3339",
  },
  credential: PLAIN_KEY,
  role: "vendor",
};
