/**
 * What GCP Vertex AI's answers mean for a key (docs/checker.md, "GCP Vertex"). A key is a
 * service account: the check signs a JWT with its private key (`jose`, RS256) and trades it at
 * the OAuth token URL for an access token, as Google's own libraries do; then it lists the
 * Claude, Mistral and Llama models of the region's catalogue with that token, billed to the
 * key's project (`x-goog-user-project`), which shows that the account may use Vertex in that
 * project. The token is used for this check only and kept nowhere.
 */
import { createPrivateKey } from "node:crypto";
import { SignJWT } from "jose";
import type { CheckSubject, KeyFinding } from "../domain/key-check";
import type { FamilyTable } from "../domain/model-families";
import { providerInfo } from "../domain/providers";
import { splitCredential } from "../domain/providers/credential";
import { combineVerdicts, failureVerdict, overQuota, rateLimited, revoked, type Verdict } from "./check-verdict";
import { googleError, isDailyQuota } from "./google-error";
import { familiesOfModels, stringsOf } from "./model-list";
import { withSlash } from "./openai-check";
import type { CheckOutcome, UpstreamAnswer } from "./upstream-answer";
import type { UpstreamRequest } from "./upstream-request";
import { fillUrlTemplate } from "./url-template";

/** The scope Vertex AI needs. */
export const VERTEX_SCOPE = "https://www.googleapis.com/auth/cloud-platform";
export const JWT_BEARER_GRANT = "urn:ietf:params:oauth:grant-type:jwt-bearer";
/** The assertion's lifetime: Google accepts at most an hour. */
const ASSERTION_SECONDS = 3600;

/** The publishers whose models keypool's Vertex family table knows. */
export const VERTEX_PUBLISHERS = ["anthropic", "mistralai", "meta"] as const;

interface VertexCredential {
  projectId: string;
  region: string;
  clientEmail: string;
  privateKey: string;
}

function vertexCredential(secret: string): VertexCredential {
  const [projectId, region, clientEmail, privateKey] = splitCredential(providerInfo("vertex").credential, secret);
  return { projectId, region, clientEmail, privateKey };
}

/**
 * The token request: the signed assertion posted as a form. Undefined when the private key cannot
 * be read or cannot sign RS256 (not an RSA key): a key that can never get a token.
 */
export async function vertexTokenRequest(subject: CheckSubject, tokenUrl: string, now: Date): Promise<UpstreamRequest | undefined> {
  const { clientEmail, privateKey } = vertexCredential(subject.secret);
  const iat = Math.floor(now.getTime() / 1000);
  let assertion: string;
  try {
    assertion = await new SignJWT({ scope: VERTEX_SCOPE })
      .setProtectedHeader({ alg: "RS256", typ: "JWT" })
      .setIssuer(clientEmail)
      .setAudience(tokenUrl)
      .setIssuedAt(iat)
      .setExpirationTime(iat + ASSERTION_SECONDS)
      .sign(createPrivateKey(privateKey));
  } catch {
    // The error may describe the key; it is not passed on.
    return undefined;
  }
  return {
    name: "token",
    method: "POST",
    url: tokenUrl,
    headers: { "content-type": "application/x-www-form-urlencoded" },
    body: new URLSearchParams({ grant_type: JWT_BEARER_GRANT, assertion }).toString(),
  };
}

/** A key whose private key cannot be read. */
export const UNREADABLE_KEY: CheckOutcome = {
  kind: "checked",
  finding: { state: "revoked", reason: "the service account's private key cannot be read or is not an RSA key: it can get no token" },
  warnings: [],
};

/** The token endpoint's answer: an access token to go on with, or the check's outcome. */
export function decideVertexToken(answer: UpstreamAnswer): { accessToken: string } | { outcome: CheckOutcome } {
  if (answer.kind === "response" && answer.status === 200) {
    const token = (answer.body as { access_token?: unknown } | undefined)?.access_token;
    if (typeof token === "string" && token.length > 0 && token.length <= 4096) return { accessToken: token };
  }
  return { outcome: combineVerdicts([{ name: "token", verdict: tokenVerdict(answer) }], {}) };
}

function tokenVerdict(answer: UpstreamAnswer): Verdict {
  if (answer.kind === "failed" || answer.status >= 500) return failureVerdict(answer);
  const { status } = answer;
  const error = oauthError(answer.body);
  if (status === 400 || status === 401 || status === 403) {
    // invalid_grant: the account is gone or disabled, or its key was deleted; invalid_client and
    // unauthorized_client: the same, said another way.
    if (["invalid_grant", "invalid_client", "unauthorized_client", "access_denied"].includes(error) || status !== 400) {
      return revoked(`the token endpoint answered ${status}${error ? ` ${error}` : ""}: it refused the service account`);
    }
  }
  if (status === 429) return rateLimited("token endpoint 429");
  return { kind: "unchanged", warning: { request: "token", status, errorType: error || "none" } };
}

/** OAuth's `{"error": "invalid_grant", "error_description": "..."}`: the code only. */
function oauthError(body: unknown): string {
  const error = (body as { error?: unknown } | undefined)?.error;
  return typeof error === "string" && /^[a-z_]{1,64}$/.test(error) ? error : "";
}

/** One models request per publisher, with the access token. */
export function vertexModelRequests(subject: CheckSubject, baseUrlTemplate: string, accessToken: string): UpstreamRequest[] {
  const { projectId, region } = vertexCredential(subject.secret);
  const base = withSlash(vertexBaseUrl(baseUrlTemplate, region));
  return VERTEX_PUBLISHERS.map((publisher) => ({
    name: publisher,
    method: "GET",
    url: new URL(`v1beta1/publishers/${publisher}/models?pageSize=1000`, base).toString(),
    headers: { authorization: `Bearer ${accessToken}`, "x-goog-user-project": projectId },
  }));
}

/**
 * The region's host. The global location has no region in its host name
 * (aiplatform.googleapis.com), so `{region}-` then stands for nothing.
 */
export function vertexBaseUrl(template: string, region: string): string {
  if (region === "global") return fillUrlTemplate(template.replace("{region}-", ""), { region });
  return fillUrlTemplate(template, { region });
}

/** The models answers, one per publisher of VERTEX_PUBLISHERS, in that order. */
export function decideVertex(subject: CheckSubject, answers: readonly UpstreamAnswer[], families: FamilyTable): CheckOutcome {
  const works: KeyFinding = { state: "active" };
  if (subject.firstCheck) {
    const ids = answers.flatMap((answer, i) =>
      answer.kind === "response" && answer.status === 200 ? modelIds(VERTEX_PUBLISHERS[i], answer.body) : [],
    );
    const found = familiesOfModels("vertex", ids, families);
    if (found.length > 0) works.modelFamilies = found;
  }
  return combineVerdicts(
    answers.map((answer, i) => ({ name: VERTEX_PUBLISHERS[i], verdict: modelsVerdict(VERTEX_PUBLISHERS[i], answer) })),
    works,
  );
}

/**
 * Model ids as requests name them: "publishers/anthropic/models/claude-3-5-haiku" is
 * "claude-3-5-haiku"; Llama is named with its publisher, "meta/llama-3.1-405b-instruct-maas".
 */
export function modelIds(publisher: string, body: unknown): string[] {
  return stringsOf(body, "publisherModels", "name").map((name) => {
    const id = name.slice(name.lastIndexOf("/") + 1);
    return publisher === "meta" ? `meta/${id}` : id;
  });
}

function modelsVerdict(name: string, answer: UpstreamAnswer): Verdict {
  if (answer.kind === "failed" || answer.status >= 500) return failureVerdict(answer);
  const { status } = answer;
  if (status === 200) return { kind: "works" };
  const error = googleError(answer.body);
  if (status === 401) return revoked("the upstream answered 401: it rejected the access token of the service account");
  if (status === 403) {
    if (error.reason === "BILLING_DISABLED") return overQuota("the upstream answered 403 BILLING_DISABLED: the key's project has no billing");
    return revoked(`the upstream answered 403 ${error.reason || error.status || "PERMISSION_DENIED"}: the service account may not use Vertex AI in its project`);
  }
  if (status === 429) {
    if (isDailyQuota(error)) return overQuota("the upstream answered 429 RESOURCE_EXHAUSTED for a daily quota: it is used up for the day");
    return rateLimited("429 RESOURCE_EXHAUSTED");
  }
  return { kind: "unchanged", warning: { request: name, status, errorType: error.reason || error.status || "none" } };
}
