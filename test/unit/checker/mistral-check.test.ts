/**
 * docs/checker.md's Mistral table, row by row, and the request the check makes.
 */
import { decideMistral, mistralRequest } from "../../../src/checker/mistral-check";
import { FamilyTable } from "../../../src/domain/model-families";
import { answer, refused, subject, timedOut } from "./answers";

const families = FamilyTable.builtIn();
const mis = (extra = {}) => subject({ provider: "mistral", keyHash: "mis-0123456789abcdef", secret: "mistral-secret", ...extra });

describe("Mistral: the request", () => {
  it("GET /v1/models with the key as a bearer token", () => {
    expect(mistralRequest(mis(), "https://mistral.gw.example")).toEqual({
      name: "models",
      method: "GET",
      url: "https://mistral.gw.example/v1/models",
      headers: { authorization: "Bearer mistral-secret" },
    });
  });
});

describe("Mistral answers (docs/checker.md)", () => {
  it("200: ACTIVE, the families of the models listed, unknown models skipped", () => {
    const ok = answer(200, { object: "list", data: [{ id: "codestral-latest" }, { id: "mistral-ocr-latest" }, { id: "open-mistral-nemo" }, { id: "mistral-large-2411" }] });
    expect(decideMistral(mis(), ok, families)).toEqual({
      kind: "checked",
      finding: { state: "active", modelFamilies: ["mistral-tiny", "mistral-large", "codestral"] },
      warnings: [],
    });
  });

  it.each([401, 403])("%i: REVOKED", (status) => {
    expect(decideMistral(mis(), answer(status, { message: "Unauthorized" }), families)).toMatchObject({ kind: "checked", finding: { state: "revoked" } });
  });

  it.each([
    ["a message about the monthly usage limit", { object: "error", message: "Monthly usage limit exceeded for this workspace.", type: "invalid_request_error" }],
    ["a quota message, nested", { error: { message: "You exceeded your quota", type: "invalid_request_error" } }],
    ["type insufficient_quota", { object: "error", message: "", type: "insufficient_quota" }],
  ])("429 with %s: OVER_QUOTA", (_, body) => {
    expect(decideMistral(mis(), answer(429, body), families)).toMatchObject({ kind: "checked", finding: { state: "over_quota" } });
  });

  it("429 of the request rate: rate limited, tried again after 10 s", () => {
    expect(decideMistral(mis(), answer(429, { message: "Requests rate limit exceeded" }), families)).toMatchObject({ kind: "retry", afterMs: 10_000 });
  });

  it("network error, timeout, 5xx: tried again after a minute", () => {
    for (const a of [refused, timedOut, answer(502, undefined)]) expect(decideMistral(mis(), a, families)).toMatchObject({ kind: "retry", afterMs: 60_000 });
  });

  it("other answers: unchanged, checked, a warning", () => {
    expect(decideMistral(mis(), answer(422, { object: "error", message: "bad", type: "invalid_request_error" }), families)).toEqual({
      kind: "checked",
      finding: {},
      warnings: [{ request: "models", status: 422, errorType: "invalid_request_error" }],
    });
  });
});
