/**
 * The key checker with keys of all seven providers, end to end: the built server as operators run
 * it (trace logs), keys added through AddKeys in each provider's credential format, checked
 * against the fake upstream over real sockets (Bedrock's SigV4 recomputed, Vertex's JWT verified,
 * its access token issued and used). Findings read back through ListKeys; Lease by model for each
 * provider is served from the key the check proved working; and no secret (API key, AWS secret,
 * private key, access token) is in any log line, reason or error.
 */
import { createClient, ConnectError } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { toJsonString } from "@bufbuild/protobuf";
import {
  KeyAdminService,
  KeyPoolService,
  KeyState,
  ListKeysResponseSchema,
  Provider,
  type KeyStatus,
} from "../../gen/ts/keypool/v1/keypool_pb";
import type { ProviderId } from "../../src/domain/types";
import { PROVIDERS as ALL_PROVIDERS } from "../../src/domain/providers";
import { providerToProto } from "../../src/transport/convert";
import { fakeAwsAccessKeyId, fakeVertexEmail, type Behaviour } from "../../src/fake-upstream/behaviours";
import { FakeUpstream } from "../../src/fake-upstream/fake-upstream";
import { fakeUpstreamEnv } from "../support/checker-safety";
import { ensureBuilt, spawnServer, type ChildServer } from "../support/child-server";

jest.setTimeout(60_000);

// Every provider keypool knows: all seven have a check.
const PROVIDERS: ProviderId[] = ALL_PROVIDERS.map((p) => p.id);
const BEHAVIOURS: Behaviour[] = ["working", "revoked", "over-quota"];

let fake: FakeUpstream;
let server: ChildServer;
let pool: ReturnType<typeof createClient<typeof KeyPoolService>>;
/** Every secret handed to keypool, to be found nowhere but in Lease. */
const secrets: string[] = [];
/** The credential and hash of each provider's key of each behaviour. */
const keyOf = new Map<string, { credential: string; hash: string }>();
const at = (provider: ProviderId, behaviour: Behaviour) => keyOf.get(`${provider}/${behaviour}`)!;

function credential(provider: ProviderId, behaviour: Behaviour): string {
  switch (provider) {
    case "openai":
      return `sk-fake-${behaviour}-SECRET-oai`;
    case "anthropic":
      return `sk-ant-fake-${behaviour}-SECRET-ant`;
    case "google":
      return `AIza-fake-${behaviour}-SECRET-gai`;
    case "mistral":
      return `mistral-fake-${behaviour}-SECRET-mis`;
    case "azure":
      return `contoso-east:gpt-4o:azure-fake-${behaviour}-SECRET-azu`;
    case "bedrock": {
      const id = fakeAwsAccessKeyId(behaviour, 7);
      const secret = `SECRET/aws+${behaviour}`;
      fake.setAwsSecret(id, secret);
      secrets.push(secret);
      return `${id}:eu-central-1:${secret}`;
    }
    case "vertex":
      return `keypool-e2e-project:europe-west4:${fakeVertexEmail(behaviour, 7)}:${fake.vertexTokens.privateKeyPem}`;
  }
}

async function eventually(what: string, condition: () => Promise<boolean>, timeoutMs = 45_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}:\n${server?.output().stdout.slice(-3000)}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

async function listed(): Promise<Map<string, KeyStatus>> {
  const { keys } = await pool.listKeys({});
  return new Map(keys.map((k) => [k.keyHash, k]));
}

let keys: Map<string, KeyStatus>;
let listJson: string;

beforeAll(async () => {
  ensureBuilt();
  fake = await FakeUpstream.start();
  server = await spawnServer({
    ...fakeUpstreamEnv(fake.url),
    KEYPOOL_CHECK_KEYS: "true",
    KEYPOOL_CHECK_TIMEOUT: "5s",
    KEYPOOL_LOG_LEVEL: "trace",
  });
  const transport = createGrpcTransport({ baseUrl: server.url });
  pool = createClient(KeyPoolService, transport);
  const admin = createClient(KeyAdminService, transport);
  for (const provider of PROVIDERS) {
    const behaviours = provider === "google" ? [...BEHAVIOURS, "rate-limited" as const] : BEHAVIOURS;
    const credentials = behaviours.map((b) => credential(provider, b));
    secrets.push(...credentials.map((c) => c.slice(c.lastIndexOf(":") + 1)).filter((s) => !s.includes("PRIVATE KEY")));
    const { keyHashes } = await admin.addKeys({ provider: providerToProto(provider), keys: credentials.map((key) => ({ key })) });
    behaviours.forEach((b, i) => keyOf.set(`${provider}/${b}`, { credential: credentials[i], hash: keyHashes[i] }));
  }
  await eventually("every key of every provider checked (the rate-limited one excepted)", async () => {
    keys = await listed();
    return [...keyOf.entries()].every(([name, k]) => name === "google/rate-limited" || keys.get(k.hash)?.lastChecked !== undefined);
  });
  listJson = toJsonString(ListKeysResponseSchema, await pool.listKeys({}));
}, 120_000);

afterAll(async () => {
  await server?.stop();
  await fake?.close();
});

describe("keys of all seven providers, checked against the fake upstream", () => {
  const FAMILIES: Record<ProviderId, string[]> = {
    openai: ["turbo", "gpt4", "gpt4o", "o3-mini", "dall-e"],
    anthropic: ["claude", "claude-haiku", "claude-sonnet", "claude-opus"],
    google: ["gemini-embedding", "gemini-flash-lite", "gemini-flash", "gemini-pro"],
    mistral: ["mistral-tiny", "mistral-small", "mistral-large", "codestral"],
    azure: ["gpt4o"],
    bedrock: ["claude-sonnet", "claude-haiku", "llama"],
    vertex: ["claude-sonnet", "claude-haiku", "mistral-large", "codestral", "llama"],
  };

  // Bedrock's and Vertex's working keys pass only if the fake accepted the signature and the JWT.
  it.each(PROVIDERS)("%s: the working key ACTIVE with the families its upstream lists", (provider) => {
    expect(keys.get(at(provider, "working").hash)).toMatchObject({ state: KeyState.ACTIVE, modelFamilies: FAMILIES[provider] });
  });

  it.each(PROVIDERS)("%s: the revoked key REVOKED, the over-quota key OVER_QUOTA, each with a reason", (provider) => {
    expect(keys.get(at(provider, "revoked").hash)).toMatchObject({ state: KeyState.REVOKED, stateReason: expect.stringMatching(/upstream|token endpoint/) });
    expect(keys.get(at(provider, "over-quota").hash)).toMatchObject({ state: KeyState.OVER_QUOTA, stateReason: expect.stringMatching(/quota|billing|credit/i) });
  });

  it("a rate-limited Google AI key: unchanged and not checked yet (tried again in 10 s)", () => {
    const k = keys.get(at("google", "rate-limited").hash)!;
    expect(k).toMatchObject({ state: KeyState.ACTIVE });
    expect(k.lastChecked).toBeUndefined();
  });

});

describe("Lease by model, one provider at a time, from the key the check proved working", () => {
  const MODEL: Record<ProviderId, { model: string; provider?: Provider; family: string }> = {
    openai: { model: "gpt-4o", family: "gpt4o" },
    anthropic: { model: "claude-3-5-sonnet-20241022", family: "claude-sonnet" },
    google: { model: "gemini-2.5-pro", family: "gemini-pro" },
    mistral: { model: "codestral-latest", family: "codestral" },
    azure: { model: "gpt-4o", provider: Provider.AZURE_OPENAI, family: "gpt4o" },
    bedrock: { model: "anthropic.claude-3-haiku-20240307-v1:0", family: "claude-haiku" },
    vertex: { model: "meta/llama-3.1-405b-instruct-maas", provider: Provider.GCP_VERTEX, family: "llama" },
  };

  it.each(PROVIDERS)("%s", async (provider) => {
    const { model, family } = MODEL[provider];
    const lease = await pool.lease({ model, provider: MODEL[provider].provider ?? Provider.UNSPECIFIED });
    expect({ provider: lease.provider, hash: lease.keyHash, family: lease.modelFamily, key: lease.key }).toEqual({
      provider: providerToProto(provider),
      hash: at(provider, "working").hash,
      family,
      key: at(provider, "working").credential,
    });
    expect(keys.get(lease.keyHash)!.lastChecked).toBeDefined();
  });

  it("a family the check did not find is not served: Mistral's working key lists no medium model", async () => {
    const error = await pool.lease({ model: "mistral-medium-latest" }).then(
      () => undefined,
      (e: unknown) => ConnectError.from(e),
    );
    expect(error).toBeDefined();
  });
});

describe("no secret anywhere but in Lease", () => {
  it("no API key, AWS secret, private key or access token in the logs", () => {
    const { stdout, stderr } = server.output();
    const output = stdout + stderr;
    expect(server.logs.filter((l) => l.msg === "key checked").length).toBeGreaterThanOrEqual(PROVIDERS.length * BEHAVIOURS.length);
    for (const secret of secrets) expect(output).not.toContain(secret);
    expect(output).not.toContain("SECRET");
    expect(output).not.toContain("PRIVATE KEY");
    expect(output).not.toContain(fake.vertexTokens.privateKeyPem.split("\n")[1]);
    expect(output).not.toContain("ya29.");
  });

  it("no secret in ListKeys (reasons included)", () => {
    expect(listJson).not.toContain("SECRET");
    expect(listJson).not.toContain("PRIVATE KEY");
    expect(listJson).not.toContain("ya29.");
  });
});
