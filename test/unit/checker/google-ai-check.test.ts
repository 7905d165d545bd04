/**
 * docs/checker.md's Google AI table, row by row, and the request the check makes.
 */
import { decideGoogleAi, googleAiRequest } from "../../../src/checker/google-ai-check";
import { FamilyTable } from "../../../src/domain/model-families";
import { answer, refused, subject, timedOut } from "./answers";

const families = FamilyTable.builtIn();
const gai = (extra = {}) => subject({ provider: "google", keyHash: "gai-0123456789abcdef", secret: "AIzaSyTest", ...extra });
const googleError = (status: number, code: string, reason?: string, quotaId?: string) =>
  answer(status, {
    error: {
      code: status,
      message: "API key not valid: AIzaSyTest",
      status: code,
      details: [
        ...(reason ? [{ "@type": "type.googleapis.com/google.rpc.ErrorInfo", reason }] : []),
        ...(quotaId ? [{ "@type": "type.googleapis.com/google.rpc.QuotaFailure", violations: [{ quotaId }] }] : []),
      ],
    },
  });

describe("Google AI: the request", () => {
  it("GET /v1beta/models with the key in x-goog-api-key, not in the URL; a base URL's path is kept", () => {
    const r = googleAiRequest(gai(), "https://gw.example/google");
    expect(r).toEqual({
      name: "models",
      method: "GET",
      url: "https://gw.example/google/v1beta/models?pageSize=1000",
      headers: { "x-goog-api-key": "AIzaSyTest" },
    });
  });
});

describe("Google AI answers (docs/checker.md)", () => {
  it("200: ACTIVE, the families of the models listed in the table's order, unknown models skipped", () => {
    const ok = answer(200, { models: [{ name: "models/gemini-2.5-pro" }, { name: "models/aqa" }, { name: "models/gemini-2.0-flash" }, { name: 7 }] });
    expect(decideGoogleAi(gai(), ok, families)).toEqual({
      kind: "checked",
      finding: { state: "active", modelFamilies: ["gemini-flash", "gemini-pro"] },
      warnings: [],
    });
  });

  it("200 listing no known model, or a later check: ACTIVE, families unchanged", () => {
    expect(decideGoogleAi(gai(), answer(200, { models: [{ name: "models/aqa" }] }), families)).toEqual({ kind: "checked", finding: { state: "active" }, warnings: [] });
    expect(decideGoogleAi(gai({ firstCheck: false }), answer(200, { models: [{ name: "models/gemini-2.5-pro" }] }), families)).toEqual({
      kind: "checked",
      finding: { state: "active" },
      warnings: [],
    });
  });

  it.each([
    ["400 API_KEY_INVALID", googleError(400, "INVALID_ARGUMENT", "API_KEY_INVALID")],
    ["401", googleError(401, "UNAUTHENTICATED")],
    ["403 PERMISSION_DENIED", googleError(403, "PERMISSION_DENIED")],
    ["403 SERVICE_DISABLED", googleError(403, "PERMISSION_DENIED", "SERVICE_DISABLED")],
  ])("%s: REVOKED, a reason without the key", (_, a) => {
    const out = decideGoogleAi(gai(), a, families);
    expect(out).toMatchObject({ kind: "checked", finding: { state: "revoked" } });
    expect(JSON.stringify(out)).not.toContain("AIzaSyTest");
  });

  it("403 BILLING_DISABLED, 429 of a daily quota: OVER_QUOTA", () => {
    expect(decideGoogleAi(gai(), googleError(403, "PERMISSION_DENIED", "BILLING_DISABLED"), families)).toMatchObject({ finding: { state: "over_quota" } });
    expect(decideGoogleAi(gai(), googleError(429, "RESOURCE_EXHAUSTED", undefined, "GenerateRequestsPerDayPerProjectPerModel-FreeTier"), families)).toMatchObject({
      finding: { state: "over_quota", reason: expect.stringMatching(/daily/) },
    });
  });

  it("429 of a per-minute quota (or none named): rate limited, tried again after 10 s", () => {
    for (const a of [googleError(429, "RESOURCE_EXHAUSTED", undefined, "GenerateRequestsPerMinutePerProjectPerModel"), answer(429, undefined)]) {
      expect(decideGoogleAi(gai(), a, families)).toMatchObject({ kind: "retry", afterMs: 10_000 });
    }
  });

  it("network error, timeout, 5xx: not checked, tried again after a minute", () => {
    for (const a of [refused, timedOut, googleError(503, "UNAVAILABLE"), answer(500, "oops")]) {
      expect(decideGoogleAi(gai(), a, families)).toMatchObject({ kind: "retry", afterMs: 60_000 });
    }
  });

  it("other answers (a 400 of another reason, a 404): unchanged, checked, a warning by status and reason", () => {
    expect(decideGoogleAi(gai(), googleError(400, "INVALID_ARGUMENT", "BAD_PAGE"), families)).toEqual({
      kind: "checked",
      finding: {},
      warnings: [{ request: "models", status: 400, errorType: "BAD_PAGE" }],
    });
    expect(decideGoogleAi(gai(), answer(404, undefined), families)).toMatchObject({ finding: {}, warnings: [{ status: 404, errorType: "none" }] });
  });
});
