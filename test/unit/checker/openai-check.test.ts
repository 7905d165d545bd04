/**
 * docs/checker.md's OpenAI table, row by row: what each answer makes of the key.
 */
import { decideOpenAi, familiesFromModels, openAiRequests, organizationsFrom } from "../../../src/checker/openai-check";
import { FamilyTable } from "../../../src/domain/model-families";
import { answer, openAiError, refused, subject, timedOut } from "./answers";

const families = FamilyTable.builtIn();
/** The liveness answer of a working key: the invalid request refused, a paid key's limit. */
const works = (limit = "10000") =>
  answer(400, { error: { type: "invalid_request_error", code: "integer_below_min_value" } }, { "x-ratelimit-limit-requests": limit });
const modelsBody = (...ids: string[]) => ({ object: "list", data: ids.map((id) => ({ id, object: "model" })) });
const models = (...ids: string[]) => answer(200, modelsBody(...ids));
const orgs = (...list: [string, boolean][]) => answer(200, { data: list.map(([id, d]) => ({ id, is_default: d })) });

describe("OpenAI answers (docs/checker.md)", () => {
  it("401 on any request: REVOKED, the reason says the upstream rejected the key (and quotes nothing of it)", () => {
    for (const which of ["liveness", "models", "organizations"] as const) {
      const answers = { liveness: works(), models: models("gpt-4o"), organizations: orgs(["org-a", true]) };
      answers[which] = openAiError(401, "invalid_request_error", "invalid_api_key");
      const out = decideOpenAi(subject(), answers, families);
      expect(out).toMatchObject({ kind: "checked", finding: { state: "revoked" } });
      if (out.kind !== "checked") throw new Error("unreachable");
      expect(out.finding.reason).toMatch(/401.*rejected the key/);
      expect(out.finding.reason).not.toMatch(/sk-/);
    }
  });

  it.each([
    ["insufficient_quota", "insufficient_quota"],
    ["billing_not_active", null],
  ])("429 %s: OVER_QUOTA", (type, code) => {
    const out = decideOpenAi(subject({ firstCheck: false }), { liveness: openAiError(429, type, code) }, families);
    expect(out).toMatchObject({ kind: "checked", finding: { state: "over_quota" } });
  });

  it("429 access_terminated: REVOKED", () => {
    const out = decideOpenAi(subject({ firstCheck: false }), { liveness: openAiError(429, "access_terminated") }, families);
    expect(out).toMatchObject({ kind: "checked", finding: { state: "revoked" } });
  });

  it("429 requests on a trial key (known, or told by the 429's own limit header): OVER_QUOTA", () => {
    const known = decideOpenAi(subject({ trial: true, firstCheck: false }), { liveness: openAiError(429, "requests", "rate_limit_exceeded") }, families);
    expect(known).toMatchObject({ kind: "checked", finding: { state: "over_quota" } });
    const told = openAiError(429, "requests", "rate_limit_exceeded");
    if (told.kind === "response") told.headers = { "x-ratelimit-limit-requests": "200" };
    const out = decideOpenAi(subject({ firstCheck: false }), { liveness: told }, families);
    expect(out).toMatchObject({ kind: "checked", finding: { state: "over_quota", trial: true } });
  });

  it("429 requests on a paid key, 429 tokens: unchanged, checked (alive)", () => {
    for (const type of ["requests", "tokens"]) {
      const out = decideOpenAi(subject({ firstCheck: false }), { liveness: openAiError(429, type, "rate_limit_exceeded") }, families);
      expect(out).toEqual({ kind: "checked", finding: {}, warnings: [] });
    }
  });

  it("other 429 types and other statuses: unchanged, checked, a warning with the status and error type", () => {
    const odd = decideOpenAi(subject({ firstCheck: false }), { liveness: openAiError(429, "something_new") }, families);
    expect(odd).toEqual({ kind: "checked", finding: {}, warnings: [{ request: "liveness", status: 429, errorType: "something_new" }] });
    const forbidden = decideOpenAi(subject({ firstCheck: false }), { liveness: openAiError(403, "unsupported_country_region_territory") }, families);
    expect(forbidden).toEqual({
      kind: "checked",
      finding: {},
      warnings: [{ request: "liveness", status: 403, errorType: "unsupported_country_region_territory" }],
    });
  });

  it("network error, timeout, 5xx: unchanged, not checked, tried again after a minute", () => {
    for (const bad of [refused, timedOut, answer(500), answer(503, "busy")]) {
      const out = decideOpenAi(subject(), { liveness: works(), models: bad, organizations: orgs(["org-a", true]) }, families);
      expect(out).toMatchObject({ kind: "retry", afterMs: 60_000 });
    }
  });

  it("a definite answer wins over a failed request of the same check", () => {
    const out = decideOpenAi(subject(), { liveness: openAiError(401, "invalid_request_error"), models: timedOut }, families);
    expect(out).toMatchObject({ kind: "checked", finding: { state: "revoked" } });
  });

  it("the expected 400 invalid_request_error: the key works (ACTIVE), a paid key is no trial", () => {
    const out = decideOpenAi(subject({ firstCheck: false }), { liveness: works("10000") }, families);
    expect(out).toEqual({ kind: "checked", finding: { state: "active", trial: false }, warnings: [] });
  });

  it("x-ratelimit-limit-requests of 250 or fewer is a trial key; above is not; missing says nothing", () => {
    const at = (limit?: string) =>
      decideOpenAi(subject({ firstCheck: false }), { liveness: answer(400, { error: { type: "invalid_request_error" } }, limit ? { "x-ratelimit-limit-requests": limit } : {}) }, families);
    expect(at("250")).toMatchObject({ finding: { trial: true } });
    expect(at("3")).toMatchObject({ finding: { trial: true } });
    expect(at("251")).toMatchObject({ finding: { trial: false } });
    const none = at(undefined);
    expect(none.kind === "checked" && "trial" in none.finding).toBe(false);
  });
});

describe("OpenAI first check: models, organizations", () => {
  it("families come from the model ids, in the family table's order; unknown ids are skipped", () => {
    const out = decideOpenAi(
      subject(),
      { liveness: works(), models: models("whisper-1", "gpt-4o", "gpt-3.5-turbo", "o3-mini", "gpt-4", "tts-1"), organizations: orgs() },
      families,
    );
    expect(out).toMatchObject({ kind: "checked", finding: { state: "active", modelFamilies: ["turbo", "gpt4", "gpt4o", "o3-mini"] } });
  });

  it("a gpt-4-32k snapshot without gpt-4-32k itself does not grant gpt4-32k", () => {
    expect(familiesFromModels(modelsBody("gpt-4", "gpt-4-32k-0613"), false, families)).toEqual(["gpt4"]);
    expect(familiesFromModels(modelsBody("gpt-4", "gpt-4-32k", "gpt-4-32k-0613"), false, families)).toEqual(["gpt4-32k", "gpt4"]);
  });

  it("a trial key does not serve dall-e; a paid one does", () => {
    expect(familiesFromModels(modelsBody("gpt-3.5-turbo", "dall-e-3"), true, families)).toEqual(["turbo"]);
    expect(familiesFromModels(modelsBody("gpt-3.5-turbo", "dall-e-3"), false, families)).toEqual(["turbo", "dall-e"]);
    const out = decideOpenAi(subject(), { liveness: works("200"), models: models("gpt-3.5-turbo", "dall-e-2") }, families);
    expect(out).toMatchObject({ finding: { trial: true, modelFamilies: ["turbo"] } });
  });

  it("a models list with no known model leaves the families alone", () => {
    const out = decideOpenAi(subject(), { liveness: works(), models: models("whisper-1") }, families);
    expect(out.kind === "checked" && "modelFamilies" in out.finding).toBe(false);
  });

  it("the default organization binds the key; every other one becomes a clone", () => {
    const out = decideOpenAi(
      subject(),
      { liveness: works(), models: models("gpt-4o"), organizations: orgs(["org-b", false], ["org-a", true], ["org-c", false]) },
      families,
    );
    expect(out).toMatchObject({ finding: { organizationId: "org-a", cloneOrganizations: ["org-b", "org-c"] } });
    expect(organizationsFrom({ data: [{ id: "org-x" }] })).toEqual({ bound: "org-x", others: [] });
    expect(organizationsFrom({ data: "nonsense" })).toEqual({ others: [] });
  });

  it("a first check asks for models, liveness and organizations; a later one, or a bound key, asks less", () => {
    const first = openAiRequests(subject(), "http://127.0.0.1:9/base");
    expect(first.models?.url).toBe("http://127.0.0.1:9/base/v1/models");
    expect(first.organizations?.url).toBe("http://127.0.0.1:9/base/v1/organizations");
    expect(first.liveness).toMatchObject({ method: "POST", url: "http://127.0.0.1:9/base/v1/chat/completions" });
    expect(JSON.parse(first.liveness.body!)).toMatchObject({ max_tokens: -1 });
    expect(first.liveness.headers.authorization).toBe("Bearer sk-test-secret");
    const later = openAiRequests(subject({ firstCheck: false }), "http://127.0.0.1:9");
    expect(Object.keys(later)).toEqual(["liveness"]);
    const clone = openAiRequests(subject({ organizationId: "org-b" }), "http://127.0.0.1:9/");
    expect(clone.organizations).toBeUndefined();
    expect(clone.models?.headers["openai-organization"]).toBe("org-b");
  });
});
