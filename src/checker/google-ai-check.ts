/**
 * What Google AI's (Gemini API's) answer means for a key (docs/checker.md, "Google AI"): one
 * request, `GET /v1beta/models` with the key in `x-goog-api-key` (a header, so that the key is in
 * no URL a gateway might log). The families are those of the models listed.
 */
import type { CheckSubject, KeyFinding } from "../domain/key-check";
import type { FamilyTable } from "../domain/model-families";
import { combineVerdicts, failureVerdict, overQuota, rateLimited, revoked, type Verdict } from "./check-verdict";
import { googleError, isDailyQuota } from "./google-error";
import { familiesOfModels, stringsOf } from "./model-list";
import { withSlash } from "./openai-check";
import type { CheckOutcome, UpstreamAnswer } from "./upstream-answer";
import type { UpstreamRequest } from "./upstream-request";

/** One page holds every model the API offers (about fifty). */
export const GOOGLE_AI_PAGE_SIZE = 1000;

export function googleAiRequest(subject: CheckSubject, baseUrl: string): UpstreamRequest {
  return {
    name: "models",
    method: "GET",
    url: new URL(`v1beta/models?pageSize=${GOOGLE_AI_PAGE_SIZE}`, withSlash(baseUrl)).toString(),
    headers: { "x-goog-api-key": subject.secret },
  };
}

export function decideGoogleAi(subject: CheckSubject, answer: UpstreamAnswer, families: FamilyTable): CheckOutcome {
  const works: KeyFinding = { state: "active" };
  if (answer.kind === "response" && answer.status === 200 && subject.firstCheck) {
    const found = familiesOfModels("google", stringsOf(answer.body, "models", "name"), families);
    if (found.length > 0) works.modelFamilies = found;
  }
  return combineVerdicts([{ name: "models", verdict: googleAiVerdict(answer) }], works);
}

function googleAiVerdict(answer: UpstreamAnswer): Verdict {
  if (answer.kind === "failed" || answer.status >= 500) return failureVerdict(answer);
  const { status } = answer;
  if (status === 200) return { kind: "works" };
  const error = googleError(answer.body);
  if (status === 400 && (error.reason === "API_KEY_INVALID" || error.reason === "API_KEY_EXPIRED")) {
    return revoked(`the upstream answered 400 ${error.reason}: it rejected the key`);
  }
  if (status === 401) return revoked("the upstream answered 401: it rejected the key");
  if (status === 403) {
    if (error.reason === "BILLING_DISABLED") return overQuota("the upstream answered 403 BILLING_DISABLED: the key's project has no billing");
    return revoked(`the upstream answered 403 ${error.reason || error.status || "PERMISSION_DENIED"}: the key may not use the API`);
  }
  if (status === 429) {
    if (isDailyQuota(error)) return overQuota("the upstream answered 429 RESOURCE_EXHAUSTED for a daily quota: it is used up for the day");
    return rateLimited("429 RESOURCE_EXHAUSTED");
  }
  return { kind: "unchanged", warning: { request: "models", status, errorType: error.reason || error.status || "none" } };
}
