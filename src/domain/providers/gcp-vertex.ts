import { NO_RATE_LIMIT_HEADERS, type ProviderInfo } from "./provider";

/**
 * GCP Vertex AI. A key is a service account in one project and region; the proxy trades the
 * account's private key for an access token. Claude on Vertex is named like Anthropic's models
 * with an "@version" ("claude-3-5-sonnet-v2@20241022"), so a model name alone picks Anthropic:
 * Lease names the provider for Vertex (docs/keys-and-models.md).
 */
export const gcpVertex: ProviderInfo = {
  id: "vertex",
  displayName: "GCP Vertex AI",
  hashPrefix: "vtx-",
  defaultFamilies: ["claude", "claude-haiku", "claude-sonnet", "claude-opus", "mistral-small", "mistral-large", "codestral", "llama"],
  familyRules: [
    { pattern: /^claude-.*opus/, family: "claude-opus" },
    { pattern: /^claude-.*sonnet/, family: "claude-sonnet" },
    { pattern: /^claude-.*haiku/, family: "claude-haiku" },
    { pattern: /^claude-/, family: "claude" },
    { pattern: /^(?:mistral-large|pixtral-large)/, family: "mistral-large" },
    { pattern: /^(?:mistral-small|mistral-nemo|ministral-)/, family: "mistral-small" },
    { pattern: /^codestral/, family: "codestral" },
    { pattern: /^meta\/llama/, family: "llama" },
  ],
  embeddingModels: /(?!)/,
  // A 429 RESOURCE_EXHAUSTED carries no rate-limit headers.
  rateLimitHeaders: NO_RATE_LIMIT_HEADERS,
  credential: {
    parts: [
      { field: "projectId", label: "project id", shape: /^[a-z][a-z0-9-]{4,28}[a-z0-9]$/, shapeHint: "6 to 30 lower-case letters, digits and '-'" },
      { field: "region", label: "region", shape: /^(?:global|[a-z]+-[a-z]+\d+)$/, shapeHint: "a GCP region such as us-central1" },
      { field: "clientEmail", label: "client email", shape: /^[^\s@:]+@[^\s@:]+\.[^\s@:]+$/, shapeHint: "the service account's e-mail address" },
      {
        field: "privateKey",
        label: "private key",
        shape: /^-----BEGIN (?:RSA )?PRIVATE KEY-----[\s\S]+-----END (?:RSA )?PRIVATE KEY-----$/,
        shapeHint: "a PEM private key, -----BEGIN PRIVATE KEY----- ... -----END PRIVATE KEY-----",
      },
    ],
    // A 2048-bit RSA key in PEM is about 1.7 KB; 4096-bit about 3.3 KB.
    maxBytes: 8192,
    lineBreaks: true,
  },
  role: "host",
};
