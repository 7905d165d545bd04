import { ErrorCode } from "../../../../src/domain/errors";
import { PROVIDERS, providerInfo } from "../../../../src/domain/providers";
import type { ProviderId } from "../../../../src/domain/types";
import { makePool, poolError } from "../helpers";
import { credential, PEM } from "./fixtures";

/** AddKeys of one key; expects INVALID_ARGUMENT and returns its message. */
function refused(provider: ProviderId, key: string): string {
  const { pool } = makePool();
  const message = poolError(() => pool.addKeys([{ provider, key }]), ErrorCode.InvalidArgument).message;
  expect(pool.size).toBe(0);
  return message;
}

describe("credentials are checked when a key is added", () => {
  it.each(PROVIDERS.map((p) => p.id))("a valid %s credential is added under its provider's hash prefix", (provider) => {
    const { pool } = makePool();
    const { keyHashes } = pool.addKeys([{ provider, key: credential(provider) }]);
    expect(keyHashes[0]).toMatch(new RegExp(`^${providerInfo(provider).hashPrefix}[0-9a-f]{16}$`));
  });

  it("every provider has its own hash prefix", () => {
    const prefixes = PROVIDERS.map((p) => p.hashPrefix);
    expect(new Set(prefixes).size).toBe(PROVIDERS.length);
    expect(prefixes).toEqual(["oai-", "ant-", "gai-", "mis-", "azu-", "bdr-", "vtx-"]);
  });

  it.each([
    // provider, credential, what the message must name
    ["azure", "contoso-east:gpt4o-prod", ["Azure OpenAI", "missing: api key", "<resource-name>:<deployment-id>:<api-key>"]],
    ["azure", "contoso-east::s3cretvalue", ["Azure OpenAI", "missing: deployment id"]],
    ["azure", ":gpt4o-prod:s3cretvalue", ["Azure OpenAI", "missing: resource name"]],
    ["azure", "s3cretvalue", ["Azure OpenAI", "missing: deployment id, api key"]],
    ["azure", "contoso east:gpt4o-prod:s3cretvalue", ["Azure OpenAI", "resource name is not valid"]],
    ["bedrock", "AKIAIOSFODNN7EXAMPLE:us-east-1", ["AWS Bedrock", "missing: secret access key"]],
    ["bedrock", "AKIAIOSFODNN7EXAMPLE::s3cretvalue", ["AWS Bedrock", "missing: region"]],
    ["bedrock", "AKIAIOSFODNN7EXAMPLE:useast:s3cretvalue", ["AWS Bedrock", "region is not valid", "us-east-1"]],
    ["bedrock", "akia-lower:us-east-1:s3cretvalue", ["AWS Bedrock", "access key id is not valid"]],
    ["vertex", `my-project-123:us-central1:pool@my-project-123.iam.gserviceaccount.com`, ["GCP Vertex AI", "missing: private key"]],
    ["vertex", `my-project-123:us-central1::${PEM}`, ["GCP Vertex AI", "missing: client email"]],
    ["vertex", `my-project-123:us-central1:not-an-email:${PEM}`, ["GCP Vertex AI", "client email is not valid"]],
    ["vertex", `my-project-123:us-central1:a@b.example.com:s3cretvalue`, ["GCP Vertex AI", "private key is not valid", "PEM"]],
    ["vertex", `My_Project:us-central1:a@b.example.com:${PEM}`, ["GCP Vertex AI", "project id is not valid"]],
  ] as [ProviderId, string, string[]][])("%s %j is refused, naming the provider and the part", (provider, key, expected) => {
    const message = refused(provider, key);
    for (const text of expected) expect(message).toContain(text);
    expect(message).not.toContain("s3cretvalue");
    expect(message).not.toContain("MIIEvQ");
  });

  it("the secret part may hold colons and newlines: only the first colons split", () => {
    const { pool } = makePool();
    const key = "contoso-east:gpt4o-prod:abc:def";
    const [hash] = pool.addKeys([{ provider: "azure", key }]).keyHashes;
    expect(pool.secretOf(hash)).toBe(key);
  });

  it("a Vertex credential may be up to 8 KiB (a PEM key is long); others up to 1 KiB", () => {
    const longPem = `-----BEGIN PRIVATE KEY-----\n${"A".repeat(3000)}\n-----END PRIVATE KEY-----`;
    const { pool } = makePool();
    expect(pool.addKeys([{ provider: "vertex", key: `my-project-123:us-central1:a@b.example.com:${longPem}` }]).added).toBe(1);
    expect(refused("mistral", "m".repeat(1025))).toContain("the limit for Mistral is 1024 bytes");
    expect(refused("vertex", `my-project-123:us-central1:a@b.example.com:${"A".repeat(8200)}`)).toContain("8192");
  });

  it("line breaks are allowed only in Vertex's PEM private key", () => {
    expect(refused("azure", "contoso-east:gpt4o-prod:abc\ndef")).toContain("control character U+000A");
    expect(refused("mistral", "abc\r\ndef")).toContain("control character U+000D");
    expect(refused("vertex", `my-project-123:us-central1:a@b.example.com:${PEM}\u0000`)).toContain("control character U+0000");
    const { pool } = makePool();
    expect(pool.addKeys([{ provider: "vertex", key: `my-project-123:us-central1:a@b.example.com:${PEM.replace(/\n/g, "\r\n")}` }]).added).toBe(1);
  });

  it("the same secret under two providers is two keys", () => {
    const { pool } = makePool();
    const { keyHashes } = pool.addKeys([
      { provider: "google", key: "shared" },
      { provider: "mistral", key: "shared" },
    ]);
    expect(keyHashes[0].slice(4)).toBe(keyHashes[1].slice(4));
    expect(pool.size).toBe(2);
  });
});
