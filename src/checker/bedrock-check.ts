/**
 * What AWS Bedrock's answer means for a key (docs/checker.md, "AWS Bedrock"): one request,
 * ListFoundationModels (`GET /foundation-models` on the region's control-plane host), signed
 * with SigV4 for the key's access key pair and region by `@smithy/signature-v4`, AWS's own
 * signer. AWS names the error in `x-amzn-errortype` (or the body's `__type`).
 */
import { Sha256 } from "@aws-crypto/sha256-js";
import { SignatureV4 } from "@smithy/signature-v4";
import type { CheckSubject, KeyFinding } from "../domain/key-check";
import type { FamilyTable } from "../domain/model-families";
import { providerInfo } from "../domain/providers";
import { splitCredential } from "../domain/providers/credential";
import { combineVerdicts, failureVerdict, overQuota, rateLimited, revoked, type Verdict } from "./check-verdict";
import { familiesOfModels, stringsOf } from "./model-list";
import { withSlash } from "./openai-check";
import { header, type CheckOutcome, type UpstreamAnswer } from "./upstream-answer";
import type { UpstreamRequest } from "./upstream-request";
import { fillUrlTemplate } from "./url-template";

/** The SigV4 service name of Bedrock's control plane. */
export const BEDROCK_SERVICE = "bedrock";

/** The signed request; `now` is the signing time (SigV4 signatures expire after 15 minutes). */
export async function bedrockRequest(subject: CheckSubject, baseUrlTemplate: string, now: Date): Promise<UpstreamRequest> {
  const [accessKeyId, region, secretAccessKey] = splitCredential(providerInfo("bedrock").credential, subject.secret);
  const url = new URL("foundation-models", withSlash(fillUrlTemplate(baseUrlTemplate, { region })));
  const signer = new SignatureV4({ service: BEDROCK_SERVICE, region, credentials: { accessKeyId, secretAccessKey }, sha256: Sha256 });
  const signed = await signer.sign(
    {
      method: "GET",
      protocol: url.protocol,
      hostname: url.hostname,
      port: url.port ? Number(url.port) : undefined,
      path: url.pathname,
      query: {},
      headers: { host: url.host },
    },
    { signingDate: now },
  );
  // fetch sends the Host header itself, from the same URL.
  const { host: _host, ...headers } = signed.headers;
  return { name: "models", method: "GET", url: url.toString(), headers };
}

export function decideBedrock(subject: CheckSubject, answer: UpstreamAnswer, families: FamilyTable): CheckOutcome {
  const works: KeyFinding = { state: "active" };
  if (answer.kind === "response" && answer.status === 200 && subject.firstCheck) {
    const found = familiesOfModels("bedrock", stringsOf(answer.body, "modelSummaries", "modelId"), families);
    if (found.length > 0) works.modelFamilies = found;
  }
  return combineVerdicts([{ name: "models", verdict: bedrockVerdict(answer) }], works);
}

/** 403s that say the key pair itself is bad (deleted, deactivated, or its secret wrong). */
const BAD_CREDENTIALS = new Set([
  "UnrecognizedClientException",
  "InvalidSignatureException",
  "SignatureDoesNotMatch",
  "InvalidClientTokenId",
  "IncompleteSignatureException",
]);

function bedrockVerdict(answer: UpstreamAnswer): Verdict {
  if (answer.kind === "failed" || answer.status >= 500) return failureVerdict(answer);
  const { status } = answer;
  if (status === 200) return { kind: "works" };
  const type = awsErrorType(answer);
  if (status === 401 || (status === 403 && BAD_CREDENTIALS.has(type))) {
    return revoked(`the upstream answered ${status}${type ? ` ${type}` : ""}: it rejected the key`);
  }
  if (type === "ServiceQuotaExceededException") return overQuota("the upstream answered ServiceQuotaExceededException: the account's quota is used up");
  if (status === 429 || type === "ThrottlingException") return rateLimited(type || "429");
  // AccessDeniedException included: a key may lack bedrock:ListFoundationModels and still invoke models.
  return { kind: "unchanged", warning: { request: "models", status, errorType: type || "none" } };
}

/** "UnrecognizedClientException" from `x-amzn-errortype: UnrecognizedClientException:http://...` or the body's `__type`. */
export function awsErrorType(answer: UpstreamAnswer): string {
  const raw = header(answer, "x-amzn-errortype") ?? (answer.kind === "response" ? (answer.body as { __type?: unknown } | undefined)?.__type : undefined);
  if (typeof raw !== "string") return "";
  const name = raw.split(":")[0].split("#").pop() ?? "";
  return /^[A-Za-z0-9_.-]{1,64}$/.test(name) ? name : "";
}
