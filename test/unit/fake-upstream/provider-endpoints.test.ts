/**
 * The fake upstream's endpoints for the newer providers refuse what the real ones refuse: a
 * Bedrock request without a valid SigV4 signature (malformed, tampered with after signing, for
 * another service), a Vertex token request whose JWT is not the one the account's key signs (or
 * asks for another audience), and a Vertex models call with a token it never issued.
 */
import { bedrockRequest } from "../../../src/checker/bedrock-check";
import { vertexTokenRequest } from "../../../src/checker/vertex-check";
import type { CheckSubject } from "../../../src/domain/key-check";
import { fakeAwsAccessKeyId, fakeAwsSecret, fakeVertexEmail } from "../../../src/fake-upstream/behaviours";
import { FakeUpstream } from "../../../src/fake-upstream/fake-upstream";
import { checkSubject } from "../../support/check-subject";

let fake: FakeUpstream;
beforeAll(async () => {
  fake = await FakeUpstream.start();
});
afterAll(() => fake.close());

const subject = (provider: CheckSubject["provider"], secret: string): CheckSubject => checkSubject(provider, secret);
const ID = fakeAwsAccessKeyId("working");
const bedrock = subject("bedrock", `${ID}:us-east-1:${fakeAwsSecret(ID)}`);

describe("Bedrock: SigV4", () => {
  it("a signed request passes; the same request unsigned, or re-pointed after signing, does not", async () => {
    const r = await bedrockRequest(bedrock, fake.url, new Date());
    expect((await fetch(r.url, { headers: r.headers })).status).toBe(200);

    const unsigned = await fetch(r.url);
    expect(unsigned.status).toBe(403);
    expect(unsigned.headers.get("x-amzn-errortype")).toMatch(/^IncompleteSignatureException:/);

    const tampered = await fetch(`${r.url}?byOutputModality=TEXT`, { headers: r.headers });
    expect(tampered.status).toBe(403);
    expect(tampered.headers.get("x-amzn-errortype")).toMatch(/^InvalidSignatureException:/);
  });

  it("a signature for another service, or by an access key the fake does not know, is refused", async () => {
    const r = await bedrockRequest(bedrock, fake.url, new Date());
    const otherService = r.headers.authorization.replace("/bedrock/", "/s3/");
    const a = await fetch(r.url, { headers: { ...r.headers, authorization: otherService } });
    expect(a.headers.get("x-amzn-errortype")).toMatch(/^InvalidSignatureException:/);
    const stranger = await bedrockRequest(subject("bedrock", "AKIAIOSFODNN7EXAMPLE:us-east-1:whatever"), fake.url, new Date());
    const b = await fetch(stranger.url, { headers: stranger.headers });
    expect(b.headers.get("x-amzn-errortype")).toMatch(/^UnrecognizedClientException:/);
  });
});

describe("Vertex: the token endpoint and the models endpoint", () => {
  const vertex = () => subject("vertex", `keypool-fake-project:us-central1:${fakeVertexEmail("working")}:${fake.vertexTokens.privateKeyPem}`);

  it("a JWT signed with the fake's key for its token URL gets a token the models endpoint accepts", async () => {
    const r = (await vertexTokenRequest(vertex(), `${fake.url}/token`, new Date()))!;
    const answer = await fetch(r.url, { method: "POST", headers: r.headers, body: r.body });
    expect(answer.status).toBe(200);
    const { access_token } = (await answer.json()) as { access_token: string };
    const models = await fetch(`${fake.url}/v1beta1/publishers/anthropic/models`, {
      headers: { authorization: `Bearer ${access_token}`, "x-goog-user-project": "keypool-fake-project" },
    });
    expect(models.status).toBe(200);
  });

  it("a JWT for another audience, an expired one, or a form without the JWT grant: 400", async () => {
    const elsewhere = (await vertexTokenRequest(vertex(), "https://token.gw.example/token", new Date()))!;
    const a = await fetch(`${fake.url}/token`, { method: "POST", headers: elsewhere.headers, body: elsewhere.body });
    expect(await a.json()).toMatchObject({ error: "invalid_grant" });
    const old = (await vertexTokenRequest(vertex(), `${fake.url}/token`, new Date(Date.now() - 2 * 3600_000)))!;
    const b = await fetch(old.url, { method: "POST", headers: old.headers, body: old.body });
    expect(await b.json()).toMatchObject({ error: "invalid_grant" });
    const fresh = (await vertexTokenRequest(vertex(), `${fake.url}/token`, new Date()))!;
    const c = await fetch(fresh.url, { method: "POST", headers: fresh.headers, body: fresh.body!.replace("jwt-bearer", "password") });
    expect(c.status).toBe(400);
    expect(await c.json()).toMatchObject({ error: "unsupported_grant_type" });
  });

  it("GET /fake/vertex-private-key serves the key the token endpoint verifies against", async () => {
    const pem = await (await fetch(`${fake.url}/fake/vertex-private-key`)).text();
    expect(pem.trim()).toBe(fake.vertexTokens.privateKeyPem);
  });
});
