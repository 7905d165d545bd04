import { PLAIN_KEY } from "./credential";
import { NO_RATE_LIMIT_HEADERS, type ProviderInfo } from "./provider";

/**
 * Google AI (the Gemini API, generativelanguage.googleapis.com). Model names may come with the
 * API's "models/" prefix. Flash-Lite is its own tier, so it comes before flash.
 */
export const googleAi: ProviderInfo = {
  id: "google",
  displayName: "Google AI",
  hashPrefix: "gai-",
  // A Gemini API key reaches every model of its project.
  defaultFamilies: ["gemini-flash-lite", "gemini-flash", "gemini-pro", "gemini", "gemini-embedding"],
  familyRules: [
    { pattern: /^(?:models\/)?(?:gemini-embedding-|text-embedding-|embedding-)/, family: "gemini-embedding" },
    { pattern: /^(?:models\/)?gemini-.*flash-lite/, family: "gemini-flash-lite" },
    { pattern: /^(?:models\/)?gemini-.*flash/, family: "gemini-flash" },
    { pattern: /^(?:models\/)?gemini-.*pro/, family: "gemini-pro" },
    { pattern: /^(?:models\/)?gemini-/, family: "gemini" },
  ],
  embeddingModels: /^(?:models\/)?(?:gemini-embedding-|text-embedding-|embedding-)/,
  // A 429 says how long in retry-after (read for every provider); answers carry no counts.
  rateLimitHeaders: NO_RATE_LIMIT_HEADERS,
  credential: PLAIN_KEY,
  role: "vendor",
};
