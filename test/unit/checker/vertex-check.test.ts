/**
 * docs/checker.md's GCP Vertex tables, row by row, and the requests the check makes: the JWT is
 * verified here with node's crypto alone against the public key of the test private key.
 */
import { createPublicKey, generateKeyPairSync, verify } from "node:crypto";
import {
  VERTEX_SCOPE,
  decideVertex,
  decideVertexToken,
  modelIds,
  vertexBaseUrl,
  vertexModelRequests,
  vertexTokenRequest,
} from "../../../src/checker/vertex-check";
import { FamilyTable } from "../../../src/domain/model-families";
import { answer, refused, subject, timedOut } from "./answers";

const families = FamilyTable.builtIn();
const { privateKey } = generateKeyPairSync("rsa", { modulusLength: 2048 });
const PEM = privateKey.export({ type: "pkcs8", format: "pem" }).toString().trim();
const EMAIL = "pool@my-project-123.iam.gserviceaccount.com";
const vtx = (extra = {}) =>
  subject({ provider: "vertex", keyHash: "vtx-0123456789abcdef", secret: `my-project-123:europe-west4:${EMAIL}:${PEM}`, ...extra });
const googleError = (status: number, code: string, reason?: string, quotaId?: string) =>
  answer(status, {
    error: {
      code: status,
      status: code,
      message: "denied",
      details: [...(reason ? [{ reason }] : []), ...(quotaId ? [{ violations: [{ quotaId }] }] : [])],
    },
  });
const ok = (publisher: string, names: string[]) => answer(200, { publisherModels: names.map((n) => ({ name: `publishers/${publisher}/models/${n}` })) });

describe("Vertex: the token request", () => {
  it("posts an RS256 JWT assertion for the token URL, signed with the key's private key", async () => {
    const now = new Date(Date.UTC(2026, 11, 1, 11, 0, 0));
    const r = (await vertexTokenRequest(vtx(), "https://token.gw.example/token", now))!;
    expect(r).toMatchObject({ name: "token", method: "POST", url: "https://token.gw.example/token", headers: { "content-type": "application/x-www-form-urlencoded" } });
    const form = new URLSearchParams(r.body);
    expect(form.get("grant_type")).toBe("urn:ietf:params:oauth:grant-type:jwt-bearer");
    const [head, payload, signature] = form.get("assertion")!.split(".");
    expect(JSON.parse(Buffer.from(head, "base64url").toString())).toEqual({ alg: "RS256", typ: "JWT" });
    expect(JSON.parse(Buffer.from(payload, "base64url").toString())).toEqual({
      iss: EMAIL,
      aud: "https://token.gw.example/token",
      scope: VERTEX_SCOPE,
      iat: now.getTime() / 1000,
      exp: now.getTime() / 1000 + 3600,
    });
    expect(verify("sha256", Buffer.from(`${head}.${payload}`), createPublicKey(privateKey), Buffer.from(signature, "base64url"))).toBe(true);
    expect(r.body).not.toContain("PRIVATE KEY");
  });

  it("a private key that cannot be read makes no request", async () => {
    const bad = vtx({ secret: `my-project-123:europe-west4:${EMAIL}:-----BEGIN PRIVATE KEY-----\nMIIB\n-----END PRIVATE KEY-----` });
    expect(await vertexTokenRequest(bad, "https://token.gw.example/token", new Date())).toBeUndefined();
  });

  it("neither does a private key that is not RSA (RS256 needs one)", async () => {
    const ec = generateKeyPairSync("ec", { namedCurve: "P-256" }).privateKey.export({ type: "pkcs8", format: "pem" }).toString().trim();
    expect(await vertexTokenRequest(vtx({ secret: `my-project-123:europe-west4:${EMAIL}:${ec}` }), "https://token.gw.example/token", new Date())).toBeUndefined();
  });
});

describe("Vertex: the token endpoint's answers (docs/checker.md)", () => {
  it("200 with an access token: go on", () => {
    expect(decideVertexToken(answer(200, { access_token: "ya29.abc", expires_in: 3599 }))).toEqual({ accessToken: "ya29.abc" });
  });

  it.each([
    [400, "invalid_grant"],
    [400, "invalid_client"],
    [401, "unauthorized_client"],
    [401, ""],
    [403, ""],
  ])("%i %s: REVOKED", (status, error) => {
    expect(decideVertexToken(answer(status, error ? { error, error_description: "Invalid JWT Signature." } : undefined))).toEqual({
      outcome: { kind: "checked", finding: { state: "revoked", reason: expect.stringMatching(/refused the service account/) }, warnings: [] },
    });
  });

  it("429: tried again after 10 s; network error, timeout, 5xx: after a minute", () => {
    expect(decideVertexToken(answer(429, undefined))).toMatchObject({ outcome: { kind: "retry", afterMs: 10_000 } });
    for (const a of [refused, timedOut, answer(503, undefined)]) expect(decideVertexToken(a)).toMatchObject({ outcome: { kind: "retry", afterMs: 60_000 } });
  });

  it("200 without a token, another 400: unchanged, checked, a warning", () => {
    expect(decideVertexToken(answer(200, {}))).toEqual({ outcome: { kind: "checked", finding: {}, warnings: [{ request: "token", status: 200, errorType: "none" }] } });
    expect(decideVertexToken(answer(400, { error: "invalid_scope" }))).toEqual({
      outcome: { kind: "checked", finding: {}, warnings: [{ request: "token", status: 400, errorType: "invalid_scope" }] },
    });
  });
});

describe("Vertex: the models requests", () => {
  it("one per publisher on the region's host, with the token, billed to the key's project", () => {
    const rs = vertexModelRequests(vtx(), "https://{region}-vertex.gw.example", "ya29.abc");
    expect(rs.map((r) => r.url)).toEqual([
      "https://europe-west4-vertex.gw.example/v1beta1/publishers/anthropic/models?pageSize=1000",
      "https://europe-west4-vertex.gw.example/v1beta1/publishers/mistralai/models?pageSize=1000",
      "https://europe-west4-vertex.gw.example/v1beta1/publishers/meta/models?pageSize=1000",
    ]);
    for (const r of rs) expect(r.headers).toEqual({ authorization: "Bearer ya29.abc", "x-goog-user-project": "my-project-123" });
  });

  it("the global location's host has no region in it", () => {
    expect(vertexBaseUrl("https://{region}-vertex.gw.example", "global")).toBe("https://vertex.gw.example");
    expect(vertexBaseUrl("https://{region}-vertex.gw.example", "us-east5")).toBe("https://us-east5-vertex.gw.example");
    expect(vertexBaseUrl("http://127.0.0.1:8090", "global")).toBe("http://127.0.0.1:8090");
  });

  it("model ids as requests name them: the last segment; Llama with its publisher", () => {
    expect(modelIds("anthropic", { publisherModels: [{ name: "publishers/anthropic/models/claude-3-5-haiku" }] })).toEqual(["claude-3-5-haiku"]);
    expect(modelIds("meta", { publisherModels: [{ name: "publishers/meta/models/llama-3.1-405b-instruct-maas" }] })).toEqual(["meta/llama-3.1-405b-instruct-maas"]);
  });
});

describe("Vertex: the models answers (docs/checker.md)", () => {
  const all200 = [ok("anthropic", ["claude-3-5-sonnet-v2", "claude-3-haiku"]), ok("mistralai", ["codestral", "jamba"]), ok("meta", ["llama-3.3-70b-instruct-maas"])];

  it("200s: ACTIVE, the families of every publisher's models, unknown models skipped", () => {
    expect(decideVertex(vtx(), all200, families)).toEqual({
      kind: "checked",
      finding: { state: "active", modelFamilies: ["claude-sonnet", "claude-haiku", "codestral", "llama"] },
      warnings: [],
    });
  });

  it("401, 403 PERMISSION_DENIED or SERVICE_DISABLED on any publisher: REVOKED", () => {
    for (const bad of [answer(401, undefined), googleError(403, "PERMISSION_DENIED"), googleError(403, "PERMISSION_DENIED", "SERVICE_DISABLED")]) {
      expect(decideVertex(vtx(), [all200[0], bad, all200[2]], families)).toMatchObject({ finding: { state: "revoked" } });
    }
  });

  it("403 BILLING_DISABLED, 429 of a daily quota: OVER_QUOTA; a per-minute 429: tried again after 10 s", () => {
    expect(decideVertex(vtx(), [googleError(403, "PERMISSION_DENIED", "BILLING_DISABLED"), ...all200.slice(1)], families)).toMatchObject({ finding: { state: "over_quota" } });
    expect(decideVertex(vtx(), [googleError(429, "RESOURCE_EXHAUSTED", undefined, "RequestsPerDayPerProject"), ...all200.slice(1)], families)).toMatchObject({ finding: { state: "over_quota" } });
    expect(decideVertex(vtx(), [googleError(429, "RESOURCE_EXHAUSTED", undefined, "RequestsPerMinutePerProject"), ...all200.slice(1)], families)).toMatchObject({ kind: "retry", afterMs: 10_000 });
  });

  it("a failed request beside a REVOKED answer: REVOKED wins; beside 200s: tried again after a minute", () => {
    expect(decideVertex(vtx(), [refused, answer(401, undefined), all200[2]], families)).toMatchObject({ finding: { state: "revoked" } });
    expect(decideVertex(vtx(), [all200[0], timedOut, all200[2]], families)).toMatchObject({ kind: "retry", afterMs: 60_000, why: expect.stringMatching(/^mistralai: timed out/) });
  });

  it("a 404 for one publisher: ACTIVE from the others, a warning for it", () => {
    expect(decideVertex(vtx(), [all200[0], googleError(404, "NOT_FOUND"), all200[2]], families)).toEqual({
      kind: "checked",
      finding: { state: "active", modelFamilies: ["claude-sonnet", "claude-haiku", "llama"] },
      warnings: [{ request: "mistralai", status: 404, errorType: "NOT_FOUND" }],
    });
  });
});
