/**
 * What Anthropic's answer means for a key (docs/checker.md, "Anthropic"): a pure function, the
 * answer in, the outcome out. One request, first check or not: an Anthropic key serves every
 * Claude family, so a first check that proves the key works gives it all of them.
 */
import type { CheckSubject, KeyFinding } from "../domain/key-check";
import type { FamilyTable } from "../domain/model-families";
import {
  errorFields,
  RETRY_AFTER_FAILURE_MS,
  RETRY_AFTER_RATE_LIMIT_MS,
  type CheckOutcome,
  type UpstreamAnswer,
} from "./upstream-answer";
import { withSlash } from "./openai-check";
import type { UpstreamRequest } from "./upstream-request";

export const ANTHROPIC_VERSION = "2023-06-01";

/** A minimal request to a cheap model: one token at most. */
export const ANTHROPIC_LIVENESS_BODY = {
  model: "claude-3-haiku-20240307",
  max_tokens: 1,
  messages: [{ role: "user", content: "hi" }],
} as const;

export function anthropicRequest(subject: CheckSubject, baseUrl: string): UpstreamRequest {
  return {
    name: "liveness",
    method: "POST",
    url: new URL("v1/messages", withSlash(baseUrl)).toString(),
    headers: {
      "x-api-key": subject.secret,
      "anthropic-version": ANTHROPIC_VERSION,
      "content-type": "application/json",
    },
    body: JSON.stringify(ANTHROPIC_LIVENESS_BODY),
  };
}

export function decideAnthropic(subject: CheckSubject, answer: UpstreamAnswer, families: FamilyTable): CheckOutcome {
  if (answer.kind === "failed") {
    return { kind: "retry", afterMs: RETRY_AFTER_FAILURE_MS, why: answer.why === "timeout" ? "timed out" : "network error" };
  }
  const { status } = answer;
  if (status >= 500) return { kind: "retry", afterMs: RETRY_AFTER_FAILURE_MS, why: `upstream answered ${status}` };
  const checked = (finding: KeyFinding): CheckOutcome => ({ kind: "checked", finding, warnings: [] });
  if (status >= 200 && status < 300) {
    const finding: KeyFinding = { state: "active" };
    if (subject.firstCheck) finding.modelFamilies = [...families.familiesOf("anthropic")];
    return checked(finding);
  }
  const { type, message } = errorFields(answer.body);
  if (status === 400) {
    const text = message.toLowerCase();
    if (text.includes("credit balance is too low")) {
      return checked({ state: "over_quota", reason: "the upstream says the credit balance is too low" });
    }
    if (text.includes("usage blocked until")) {
      return checked({ state: "over_quota", reason: "the upstream says usage is blocked until a later date" });
    }
    if (text.includes("organization has been disabled")) {
      return checked({ state: "revoked", reason: "the upstream says the key's organization has been disabled" });
    }
  }
  if (status === 401 || status === 403) {
    return checked({ state: "revoked", reason: `the upstream answered ${status}: it rejected the key` });
  }
  if (status === 429 && type === "rate_limit_error") {
    return { kind: "retry", afterMs: RETRY_AFTER_RATE_LIMIT_MS, why: "rate limited (429 rate_limit_error)" };
  }
  return { kind: "checked", finding: {}, warnings: [{ request: "liveness", status, errorType: type || "none" }] };
}
