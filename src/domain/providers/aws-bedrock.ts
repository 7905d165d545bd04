import { NO_RATE_LIMIT_HEADERS, type ProviderInfo } from "./provider";

/** Bedrock model ids may carry a cross-region inference prefix: "us.", "eu.", "apac.". */
const ID = (rest: string) => new RegExp(`^(?:[a-z]{2,4}\\.)?${rest}`);

/**
 * AWS Bedrock. A key is an IAM access key pair in one region; the proxy signs requests with
 * SigV4. Model ids name their vendor ("anthropic.claude-...", "meta.llama3-..."), so a model id
 * alone says it is a Bedrock model.
 */
export const awsBedrock: ProviderInfo = {
  id: "bedrock",
  displayName: "AWS Bedrock",
  hashPrefix: "bdr-",
  defaultFamilies: ["claude", "claude-haiku", "claude-sonnet", "claude-opus", "mistral-small", "mistral-large", "llama"],
  familyRules: [
    { pattern: ID("anthropic\\.claude-.*opus"), family: "claude-opus" },
    { pattern: ID("anthropic\\.claude-.*sonnet"), family: "claude-sonnet" },
    { pattern: ID("anthropic\\.claude-.*haiku"), family: "claude-haiku" },
    { pattern: ID("anthropic\\.claude-"), family: "claude" },
    { pattern: ID("mistral\\.(?:mistral-large|pixtral-large)"), family: "mistral-large" },
    { pattern: ID("mistral\\."), family: "mistral-small" },
    { pattern: ID("meta\\.llama"), family: "llama" },
  ],
  embeddingModels: /(?!)/,
  // A throttled call is a 429 ThrottlingException with no rate-limit headers: the report's 429
  // alone starts the default cooldown.
  rateLimitHeaders: NO_RATE_LIMIT_HEADERS,
  credential: {
    parts: [
      { field: "accessKeyId", label: "access key id", shape: /^[A-Z0-9]{16,128}$/, shapeHint: "16 to 128 capital letters and digits" },
      { field: "region", label: "region", shape: /^[a-z]{2}(?:-[a-z]+)+-\d+$/, shapeHint: "an AWS region such as us-east-1" },
      { field: "secretAccessKey", label: "secret access key" },
    ],
    maxBytes: 1024,
  },
  role: "host",
};
