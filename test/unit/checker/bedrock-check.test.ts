/**
 * docs/checker.md's AWS Bedrock table, row by row, and the signed request the check makes: its
 * SigV4 signature is recomputed here from the AWS specification with node's crypto alone.
 */
import { createHash, createHmac } from "node:crypto";
import { awsErrorType, bedrockRequest, decideBedrock } from "../../../src/checker/bedrock-check";
import { FamilyTable } from "../../../src/domain/model-families";
import { answer, refused, subject, timedOut } from "./answers";

const families = FamilyTable.builtIn();
const SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";
const bdr = (extra = {}) => subject({ provider: "bedrock", keyHash: "bdr-0123456789abcdef", secret: `AKIAIOSFODNN7EXAMPLE:eu-west-3:${SECRET}`, ...extra });
const awsError = (status: number, type: string) =>
  answer(status, { message: "The security token included in the request is invalid." }, { "x-amzn-errortype": `${type}:http://errors.gw.example/coral/service/` });

const sha256 = (text: string) => createHash("sha256").update(text).digest("hex");
const hmac = (key: Buffer | string, text: string) => createHmac("sha256", key).update(text).digest();

describe("Bedrock: the request", () => {
  const at = new Date(Date.UTC(2026, 11, 1, 11, 30, 0));

  it("GET /foundation-models on the region's host, signed with SigV4 for the key, region and service bedrock", async () => {
    const r = await bedrockRequest(bdr(), "https://bedrock.{region}.gw.example", at);
    expect(r.url).toBe("https://bedrock.eu-west-3.gw.example/foundation-models");
    expect(r.method).toBe("GET");
    expect(r.headers["x-amz-date"]).toBe("20261201T113000Z");
    const auth = /^AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE\/20261201\/eu-west-3\/bedrock\/aws4_request, SignedHeaders=([a-z0-9;-]+), Signature=([0-9a-f]{64})$/.exec(r.headers.authorization);
    expect(auth).not.toBeNull();
    const signedHeaders = auth![1].split(";");
    expect(signedHeaders).toEqual(expect.arrayContaining(["host", "x-amz-date"]));
    // The signature by the specification: canonical request, string to sign, derived key.
    const values: Record<string, string> = { ...r.headers, host: "bedrock.eu-west-3.gw.example" };
    const canonical = ["GET", "/foundation-models", "", ...signedHeaders.map((h) => `${h}:${values[h].trim()}`), "", signedHeaders.join(";"), sha256("")].join("\n");
    const toSign = ["AWS4-HMAC-SHA256", "20261201T113000Z", "20261201/eu-west-3/bedrock/aws4_request", sha256(canonical)].join("\n");
    let key = hmac(`AWS4${SECRET}`, "20261201");
    for (const part of ["eu-west-3", "bedrock", "aws4_request"]) key = hmac(key, part);
    expect(auth![2]).toBe(createHmac("sha256", key).update(toSign).digest("hex"));
    // The secret itself travels nowhere.
    expect(JSON.stringify(r)).not.toContain(SECRET);
  });

  it("a base URL without {region} is used as it is; the signature covers its host and port", async () => {
    const r = await bedrockRequest(bdr(), "http://127.0.0.1:8090", at);
    expect(r.url).toBe("http://127.0.0.1:8090/foundation-models");
    expect(r.headers.authorization).toContain("/eu-west-3/bedrock/aws4_request");
  });
});

describe("Bedrock answers (docs/checker.md)", () => {
  it("200: ACTIVE, the families of the models listed (cross-region prefixes too), unknown models skipped", () => {
    const ok = answer(200, {
      modelSummaries: [
        { modelId: "amazon.titan-text-express-v1" },
        { modelId: "anthropic.claude-3-haiku-20240307-v1:0" },
        { modelId: "us.anthropic.claude-3-opus-20240229-v1:0" },
        { modelId: "mistral.mistral-large-2402-v1:0" },
      ],
    });
    expect(decideBedrock(bdr(), ok, families)).toEqual({
      kind: "checked",
      finding: { state: "active", modelFamilies: ["claude-opus", "claude-haiku", "mistral-large"] },
      warnings: [],
    });
  });

  it.each(["UnrecognizedClientException", "InvalidSignatureException", "SignatureDoesNotMatch", "InvalidClientTokenId"])("403 %s: REVOKED", (type) => {
    expect(decideBedrock(bdr(), awsError(403, type), families)).toMatchObject({ finding: { state: "revoked", reason: expect.stringContaining(type) } });
  });

  it("401: REVOKED; 403 AccessDeniedException: unchanged with a warning (the key may lack only the list permission)", () => {
    expect(decideBedrock(bdr(), answer(401, undefined), families)).toMatchObject({ finding: { state: "revoked" } });
    expect(decideBedrock(bdr(), awsError(403, "AccessDeniedException"), families)).toEqual({
      kind: "checked",
      finding: {},
      warnings: [{ request: "models", status: 403, errorType: "AccessDeniedException" }],
    });
  });

  it("ServiceQuotaExceededException: OVER_QUOTA; 429 ThrottlingException: tried again after 10 s", () => {
    expect(decideBedrock(bdr(), awsError(400, "ServiceQuotaExceededException"), families)).toMatchObject({ finding: { state: "over_quota" } });
    expect(decideBedrock(bdr(), awsError(429, "ThrottlingException"), families)).toMatchObject({ kind: "retry", afterMs: 10_000 });
  });

  it("network error, timeout, 5xx: tried again after a minute", () => {
    for (const a of [refused, timedOut, awsError(503, "ServiceUnavailableException")]) expect(decideBedrock(bdr(), a, families)).toMatchObject({ kind: "retry", afterMs: 60_000 });
  });

  it("the error type comes from x-amzn-errortype or the body's __type, as a bare name", () => {
    expect(awsErrorType(awsError(403, "UnrecognizedClientException"))).toBe("UnrecognizedClientException");
    expect(awsErrorType(answer(400, { __type: "com.amazon.coral.validate#ValidationException" }))).toBe("ValidationException");
    expect(awsErrorType(answer(400, { __type: "<script>" }))).toBe("");
  });
});
