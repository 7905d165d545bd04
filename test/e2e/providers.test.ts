/**
 * A pool holding keys of all seven providers, over real sockets with connect-node clients (gRPC
 * and Connect): keys added through AddKeys in each provider's credential format, Lease by model
 * for each provider, reports that change only the reported key, and ListKeys filtered by each
 * provider.
 */
import { Code, ConnectError } from "@connectrpc/connect";
import { timestampMs } from "@bufbuild/protobuf/wkt";
import { KeyAdminService, KeyPoolService, Provider } from "../../gen/ts/keypool/v1/keypool_pb";
import { connectClient, type ProtocolName } from "../support/clients";
import { startTestServer, type TestServer } from "../support/test-server";
import { credential, MODEL_OF } from "../unit/domain/providers/fixtures";
import type { ProviderId } from "../../src/domain/types";

const WIRE: Record<ProviderId, Provider> = {
  openai: Provider.OPENAI,
  anthropic: Provider.ANTHROPIC,
  google: Provider.GOOGLE_AI,
  mistral: Provider.MISTRAL,
  azure: Provider.AZURE_OPENAI,
  bedrock: Provider.AWS_BEDROCK,
  vertex: Provider.GCP_VERTEX,
};
const IDS = Object.keys(WIRE) as ProviderId[];
const PREFIX: Record<ProviderId, string> = { openai: "oai-", anthropic: "ant-", google: "gai-", mistral: "mis-", azure: "azu-", bedrock: "bdr-", vertex: "vtx-" };
/** Hosts whose model names a vendor also claims are leased with the provider named. */
const NAMED: ReadonlySet<ProviderId> = new Set(["azure", "vertex"]);

describe.each(["grpc", "connect"] as ProtocolName[])("seven providers in one pool over %s", (protocol) => {
  let t: TestServer;
  const hashOf = new Map<ProviderId, string>();

  beforeAll(async () => {
    t = await startTestServer({ pool: { reuseDelayMs: 0 } });
    const admin = connectClient(KeyAdminService, t.url, protocol);
    for (const id of IDS) {
      const families = id === "azure" || id === "openai" ? ["gpt4o"] : [];
      const r = await admin.addKeys({ provider: WIRE[id], keys: [{ key: credential(id), modelFamilies: families }] });
      expect(r.added).toBe(1);
      expect(r.keyHashes[0].startsWith(PREFIX[id])).toBe(true);
      hashOf.set(id, r.keyHashes[0]);
    }
  });
  afterAll(() => t.close());

  it("AddKeys refuses a composite credential with a part missing, naming the provider and part", async () => {
    const admin = connectClient(KeyAdminService, t.url, protocol);
    const error = await admin.addKeys({ provider: Provider.AWS_BEDROCK, keys: [{ key: "AKIAIOSFODNN7EXAMPLE:us-east-1" }] }).then(
      () => undefined,
      (e: unknown) => ConnectError.from(e),
    );
    expect(error?.code).toBe(Code.InvalidArgument);
    expect(error?.rawMessage).toContain("AWS Bedrock");
    expect(error?.rawMessage).toContain("missing: secret access key");
    expect(error?.rawMessage).not.toContain("AKIAIOSFODNN7EXAMPLE");
    expect(t.pool.size).toBe(IDS.length);
  });

  it.each(IDS)("Lease by model, %s: hands out that provider's key, its credential whole", async (id) => {
    const pool = connectClient(KeyPoolService, t.url, protocol);
    const { model, family } = MODEL_OF[id];
    const lease = await pool.lease({ model, provider: NAMED.has(id) ? WIRE[id] : Provider.UNSPECIFIED });
    expect({ provider: lease.provider, hash: lease.keyHash, family: lease.modelFamily }).toEqual({
      provider: WIRE[id],
      hash: hashOf.get(id),
      family,
    });
    expect(lease.key).toBe(credential(id));
  });

  it("a Bedrock throttle (429, no headers) cools down the Bedrock key only; Azure's counts hold only the Azure key", async () => {
    const pool = connectClient(KeyPoolService, t.url, protocol);
    const now = t.clock.now();
    const bedrock = await pool.reportRateLimit({ keyHash: hashOf.get("bedrock")!, statusCode: 429, headers: {} });
    expect(timestampMs(bedrock.readyAt!)).toBe(now + 10_000);
    const azure = await pool.reportRateLimit({
      keyHash: hashOf.get("azure")!,
      statusCode: 200,
      headers: { "x-ratelimit-remaining-requests": "0", "x-ratelimit-reset-requests": "2s" },
    });
    expect(timestampMs(azure.readyAt!)).toBe(now + 2000);
    const keys = await pool.listKeys({});
    const readyAt = Object.fromEntries(keys.keys.map((k) => [k.keyHash, k.readyAt ? timestampMs(k.readyAt) : 0]));
    for (const id of IDS) {
      const expected = id === "bedrock" ? now + 10_000 : id === "azure" ? now + 2000 : readyAt[hashOf.get(id)!];
      expect([id, readyAt[hashOf.get(id)!]]).toEqual([id, expected]);
      if (id !== "bedrock" && id !== "azure") expect(readyAt[hashOf.get(id)!]).toBeLessThanOrEqual(now);
    }
    const lockout = await pool.getLockoutPeriod({ model: MODEL_OF.bedrock.model });
    expect(lockout.lockout?.seconds).toBe(10n);
    const lockoutAnthropic = await pool.getLockoutPeriod({ model: MODEL_OF.anthropic.model });
    expect(lockoutAnthropic.lockout?.seconds ?? 0n).toBe(0n);
    // Ready again once the cooldown has passed.
    t.manualClock!.advance(10_000);
    expect((await pool.lease({ model: MODEL_OF.bedrock.model })).keyHash).toBe(hashOf.get("bedrock"));
  });

  it.each(IDS)("ListKeys filtered by provider, %s: lists that provider's key alone", async (id) => {
    const pool = connectClient(KeyPoolService, t.url, protocol);
    const { keys } = await pool.listKeys({ provider: WIRE[id] });
    expect(keys.map((k) => [k.keyHash, k.provider])).toEqual([[hashOf.get(id), WIRE[id]]]);
  });
});
