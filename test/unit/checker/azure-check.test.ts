/**
 * docs/checker.md's Azure OpenAI table, row by row, and the request the check makes.
 */
import { azureRequest, decideAzure, openAiModelName } from "../../../src/checker/azure-check";
import { FamilyTable } from "../../../src/domain/model-families";
import { answer, refused, subject, timedOut } from "./answers";

const families = FamilyTable.builtIn();
const azu = (extra = {}) => subject({ provider: "azure", keyHash: "azu-0123456789abcdef", secret: "contoso-east:gpt4o-prod:azsecret", ...extra });
const azureError = (status: number, code: string, message: string) => answer(status, { error: { code, message } });

describe("Azure: the request", () => {
  it("GET the key's deployment on its resource's host, the api key in api-key", () => {
    expect(azureRequest(azu(), "https://{resource}.azure.gw.example")).toEqual({
      name: "deployment",
      method: "GET",
      url: "https://contoso-east.azure.gw.example/openai/deployments/gpt4o-prod?api-version=2023-03-15-preview",
      headers: { "api-key": "azsecret" },
    });
  });

  it("a base URL without {resource} (a gateway, a fake) is used as it is", () => {
    expect(azureRequest(azu(), "http://127.0.0.1:8090/azure").url).toBe("http://127.0.0.1:8090/azure/openai/deployments/gpt4o-prod?api-version=2023-03-15-preview");
  });
});

describe("Azure answers (docs/checker.md)", () => {
  it("200: ACTIVE, the family of the one model the deployment runs", () => {
    expect(decideAzure(azu(), answer(200, { id: "gpt4o-prod", model: "gpt-4o", status: "succeeded" }), families)).toEqual({
      kind: "checked",
      finding: { state: "active", modelFamilies: ["gpt4o"] },
      warnings: [],
    });
  });

  it("Azure's gpt-35-turbo is OpenAI's gpt-3.5-turbo; a model of no family changes no family", () => {
    expect(openAiModelName("gpt-35-turbo-16k")).toBe("gpt-3.5-turbo-16k");
    expect(decideAzure(azu(), answer(200, { model: "gpt-35-turbo" }), families)).toMatchObject({ finding: { modelFamilies: ["turbo"] } });
    expect(decideAzure(azu(), answer(200, { model: "whisper" }), families)).toEqual({ kind: "checked", finding: { state: "active" }, warnings: [] });
  });

  it("401, 403, 404 DeploymentNotFound: REVOKED", () => {
    expect(decideAzure(azu(), azureError(401, "401", "Access denied due to invalid subscription key"), families)).toMatchObject({ finding: { state: "revoked" } });
    expect(decideAzure(azu(), azureError(403, "AccountDeactivated", "disabled"), families)).toMatchObject({ finding: { state: "revoked", reason: expect.stringMatching(/AccountDeactivated/) } });
    expect(decideAzure(azu(), azureError(404, "DeploymentNotFound", "no such deployment"), families)).toMatchObject({ finding: { state: "revoked", reason: expect.stringMatching(/deployment/) } });
  });

  it("403 out of call volume quota: OVER_QUOTA", () => {
    expect(decideAzure(azu(), azureError(403, "403", "Out of call volume quota for OpenAI API. Quota will be replenished in 2.00:00:00."), families)).toMatchObject({
      finding: { state: "over_quota" },
    });
  });

  it("429: rate limited, tried again after 10 s; network error, timeout, 5xx: after a minute", () => {
    expect(decideAzure(azu(), azureError(429, "429", "exceeded call rate limit"), families)).toMatchObject({ kind: "retry", afterMs: 10_000 });
    for (const a of [refused, timedOut, azureError(500, "InternalServerError", "")]) expect(decideAzure(azu(), a, families)).toMatchObject({ kind: "retry", afterMs: 60_000 });
  });

  it("other answers: unchanged, checked, a warning", () => {
    expect(decideAzure(azu(), azureError(400, "OperationNotSupported", "no"), families)).toEqual({
      kind: "checked",
      finding: {},
      warnings: [{ request: "deployment", status: 400, errorType: "OperationNotSupported" }],
    });
  });
});
