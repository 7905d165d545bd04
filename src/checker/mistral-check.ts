/**
 * What Mistral's answer means for a key (docs/checker.md, "Mistral"): one request, `GET
 * /v1/models` with the key as a bearer token. The families are those of the models listed.
 */
import type { CheckSubject, KeyFinding } from "../domain/key-check";
import type { FamilyTable } from "../domain/model-families";
import { combineVerdicts, failureVerdict, overQuota, rateLimited, revoked, type Verdict } from "./check-verdict";
import { familiesOfModels, stringsOf } from "./model-list";
import { withSlash } from "./openai-check";
import { errorFields, type CheckOutcome, type UpstreamAnswer } from "./upstream-answer";
import type { UpstreamRequest } from "./upstream-request";

export function mistralRequest(subject: CheckSubject, baseUrl: string): UpstreamRequest {
  return {
    name: "models",
    method: "GET",
    url: new URL("v1/models", withSlash(baseUrl)).toString(),
    headers: { authorization: `Bearer ${subject.secret}` },
  };
}

export function decideMistral(subject: CheckSubject, answer: UpstreamAnswer, families: FamilyTable): CheckOutcome {
  const works: KeyFinding = { state: "active" };
  if (answer.kind === "response" && answer.status === 200 && subject.firstCheck) {
    const found = familiesOfModels("mistral", stringsOf(answer.body, "data", "id"), families);
    if (found.length > 0) works.modelFamilies = found;
  }
  return combineVerdicts([{ name: "models", verdict: mistralVerdict(answer) }], works);
}

/** A 429 that says so is about the plan's quota, not about requests per second. */
const QUOTA_WORDS = /\b(?:quota|usage limit|monthly limit)\b/i;

function mistralVerdict(answer: UpstreamAnswer): Verdict {
  if (answer.kind === "failed" || answer.status >= 500) return failureVerdict(answer);
  const { status } = answer;
  if (status === 200) return { kind: "works" };
  if (status === 401 || status === 403) return revoked(`the upstream answered ${status}: it rejected the key`);
  const { type, code, message } = mistralError(answer.body);
  if (status === 429) {
    if (type === "insufficient_quota" || code === "insufficient_quota" || QUOTA_WORDS.test(message)) {
      return overQuota("the upstream answered 429 for the plan's quota: it is used up");
    }
    return rateLimited("429");
  }
  return { kind: "unchanged", warning: { request: "models", status, errorType: type || code || "none" } };
}

/** Mistral writes its error fields at the top level (`{"object": "error", "message", "type", "code"}`), sometimes nested like OpenAI. */
function mistralError(body: unknown): { type: string; code: string; message: string } {
  const nested = errorFields(body);
  if (nested.type || nested.code || nested.message) return nested;
  return errorFields({ error: body });
}
