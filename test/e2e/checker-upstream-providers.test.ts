/**
 * The checks of Google AI, Mistral, Azure OpenAI, AWS Bedrock and GCP Vertex keys against the fake
 * upstream over real sockets: every behaviour comes out as docs/checker.md says, Bedrock's SigV4
 * signature is recomputed by the fake, and Vertex's JWT is verified against the fake's key pair.
 */
import { generateKeyPairSync } from "node:crypto";
import { upstreamCheck } from "../../src/checker/upstream-check";
import { FamilyTable } from "../../src/domain/model-families";
import type { ProviderId } from "../../src/domain/types";
import { fakeAwsAccessKeyId, fakeAwsSecret, fakeVertexEmail, type Behaviour } from "../../src/fake-upstream/behaviours";
import { FakeUpstream } from "../../src/fake-upstream/fake-upstream";
import { checkSubject } from "../support/check-subject";

let fake: FakeUpstream;
beforeAll(async () => {
  fake = await FakeUpstream.start({ slowMs: 5_000 });
});
afterAll(() => fake.close());


const run = (provider: ProviderId, secret: string, options: { timeoutMs?: number; now?: () => number } = {}) =>
  upstreamCheck({ ...fake.checkerUrls(), timeoutMs: options.timeoutMs ?? 3000, families: FamilyTable.builtIn(), now: options.now })(
    checkSubject(provider, secret),
    new AbortController().signal,
  );

const bedrockKey = (behaviour: Behaviour, secret?: string) => {
  const id = fakeAwsAccessKeyId(behaviour);
  return `${id}:us-east-1:${secret ?? fakeAwsSecret(id)}`;
};
const vertexKey = (behaviour: Behaviour, privateKey = fake.vertexTokens.privateKeyPem) =>
  `keypool-fake-project:us-central1:${fakeVertexEmail(behaviour)}:${privateKey}`;

const credentials: Record<"google" | "mistral" | "azure" | "bedrock" | "vertex", (b: Behaviour) => string> = {
  google: (b) => `AIza-fake-${b}-1`,
  mistral: (b) => `mistral-fake-${b}-1`,
  azure: (b) => `contoso:gpt-4o:azure-fake-${b}-1`,
  bedrock: (b) => bedrockKey(b),
  vertex: (b) => vertexKey(b),
};

const WORKING_FAMILIES = {
  google: ["gemini-embedding", "gemini-flash-lite", "gemini-flash", "gemini-pro"],
  mistral: ["mistral-tiny", "mistral-small", "mistral-large", "codestral"],
  azure: ["gpt4o"],
  bedrock: ["claude-sonnet", "claude-haiku", "llama"],
  vertex: ["claude-sonnet", "claude-haiku", "mistral-large", "codestral", "llama"],
};

describe.each(Object.keys(credentials) as (keyof typeof credentials)[])("%s keys against the fake upstream", (provider) => {
  const key = credentials[provider];

  it("working: ACTIVE with the families of the models listed (unknown models skipped)", async () => {
    expect(await run(provider, key("working"))).toEqual({
      kind: "checked",
      finding: { state: "active", modelFamilies: WORKING_FAMILIES[provider] },
      warnings: [],
    });
  });

  it("revoked and terminated: REVOKED; over quota: OVER_QUOTA; rate limited: tried again after 10 s", async () => {
    expect(await run(provider, key("revoked"))).toMatchObject({ kind: "checked", finding: { state: "revoked" } });
    expect(await run(provider, key("terminated"))).toMatchObject({ kind: "checked", finding: { state: "revoked" } });
    expect(await run(provider, key("over-quota"))).toMatchObject({ kind: "checked", finding: { state: "over_quota" } });
    expect(await run(provider, key("rate-limited"))).toMatchObject({ kind: "retry", afterMs: 10_000 });
  });

  it("5xx, refused, slow (timeout): tried again after a minute", async () => {
    expect(await run(provider, key("5xx"))).toMatchObject({ kind: "retry", afterMs: 60_000 });
    expect(await run(provider, key("refused"))).toMatchObject({ kind: "retry", afterMs: 60_000, why: expect.stringMatching(/network/) });
    expect(await run(provider, key("slow"), { timeoutMs: 300 })).toMatchObject({ kind: "retry", why: expect.stringMatching(/timed out/) });
  });
});

describe("what only some providers have", () => {
  it("Azure: a deployment that does not exist is REVOKED; gpt-35-turbo is OpenAI's turbo", async () => {
    expect(await run("azure", "contoso:missing-deployment:azure-fake-working-1")).toMatchObject({
      finding: { state: "revoked", reason: expect.stringMatching(/DeploymentNotFound/) },
    });
    expect(await run("azure", "contoso:gpt-35-turbo:azure-fake-working-1")).toMatchObject({ finding: { state: "active", modelFamilies: ["turbo"] } });
  });

  it("Bedrock: a wrong secret fails the fake's recomputed signature: REVOKED, the secret named nowhere", async () => {
    const outcome = await run("bedrock", bedrockKey("working", "not/the+secret"));
    expect(outcome).toMatchObject({ finding: { state: "revoked", reason: expect.stringMatching(/InvalidSignatureException/) } });
    expect(JSON.stringify(outcome)).not.toContain("not/the+secret");
  });

  it("Bedrock: a signature made 20 minutes ago has expired", async () => {
    const outcome = await run("bedrock", bedrockKey("working"), { now: () => Date.now() - 20 * 60_000 });
    expect(outcome).toMatchObject({ finding: { state: "revoked", reason: expect.stringMatching(/InvalidSignatureException/) } });
  });

  it("Vertex: a JWT signed by another private key is refused by the token endpoint: REVOKED", async () => {
    const other = generateKeyPairSync("rsa", { modulusLength: 2048 }).privateKey.export({ type: "pkcs8", format: "pem" }).toString().trim();
    expect(await run("vertex", vertexKey("working", other))).toMatchObject({
      finding: { state: "revoked", reason: expect.stringMatching(/invalid_grant/) },
    });
  });

  it("Vertex: a private key that cannot be read is REVOKED without a request", async () => {
    fake.resetStats();
    const garbled = "-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC\n-----END PRIVATE KEY-----";
    expect(await run("vertex", vertexKey("working", garbled))).toMatchObject({ finding: { state: "revoked", reason: expect.stringMatching(/private key/) } });
    expect(fake.stats().requests).toBe(0);
  });

  it("Vertex: a token the fake never issued is a 401 on the models endpoint", async () => {
    const response = await fetch(`${fake.url}/v1beta1/publishers/anthropic/models`, {
      headers: { authorization: "Bearer ya29.made-up", "x-goog-user-project": "keypool-fake-project" },
    });
    expect(response.status).toBe(401);
  });
});
