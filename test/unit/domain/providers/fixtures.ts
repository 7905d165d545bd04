/** One valid credential per provider, as the wire carries it, and its parts. */
import type { ProviderId } from "../../../../src/domain/types";

export const PEM = "-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQC7\n-----END PRIVATE KEY-----";

export const PARTS = {
  azure: { resourceName: "contoso-east", deploymentId: "gpt4o-prod", apiKey: "azsecret0123456789" },
  bedrock: { accessKeyId: "AKIAIOSFODNN7EXAMPLE", region: "us-east-1", secretAccessKey: "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY" },
  vertex: { projectId: "my-project-123", region: "us-central1", clientEmail: "pool@my-project-123.iam.gserviceaccount.com", privateKey: PEM },
};

/** A credential for each provider; `n` makes distinct ones. */
export function credential(provider: ProviderId, n = 0): string {
  switch (provider) {
    case "azure":
      return `contoso-east:gpt4o-prod:azsecret${n}`;
    case "bedrock":
      return `AKIAIOSFODNN7EXAMPL${n % 10}:us-east-1:wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY${n}`;
    case "vertex":
      return `my-project-123:us-central1:pool${n}@my-project-123.iam.gserviceaccount.com:${PEM}`;
    default:
      return `${provider}-secret-${n}`;
  }
}

/** A model of each provider's, and the family it resolves to. */
export const MODEL_OF: Record<ProviderId, { model: string; family: string }> = {
  openai: { model: "gpt-4o-2024-08-06", family: "gpt4o" },
  anthropic: { model: "claude-3-5-sonnet-20241022", family: "claude-sonnet" },
  google: { model: "gemini-2.0-flash", family: "gemini-flash" },
  mistral: { model: "mistral-large-latest", family: "mistral-large" },
  azure: { model: "gpt-4o", family: "gpt4o" },
  bedrock: { model: "anthropic.claude-3-5-sonnet-20240620-v1:0", family: "claude-sonnet" },
  vertex: { model: "claude-3-5-sonnet-v2@20241022", family: "claude-sonnet" },
};
