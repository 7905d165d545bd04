/** Hand-written upstream answers and check subjects for the decision tests. */
import type { CheckSubject } from "../../../src/domain/key-check";
import type { UpstreamAnswer } from "../../../src/checker/upstream-answer";
import { checkSubject } from "../../support/check-subject";

export function answer(status: number, body?: unknown, headers: Record<string, string> = {}): UpstreamAnswer {
  return { kind: "response", status, headers, body };
}

export const openAiError = (status: number, type: string, code: string | null = null) =>
  answer(status, { error: { message: "Incorrect API key provided: sk-abc***xyz", type, param: null, code } });

export const anthropicError = (status: number, type: string, message: string) =>
  answer(status, { type: "error", error: { type, message } });

export const timedOut: UpstreamAnswer = { kind: "failed", why: "timeout" };
export const refused: UpstreamAnswer = { kind: "failed", why: "network" };

export function subject(extra: Partial<CheckSubject> = {}): CheckSubject {
  return checkSubject("openai", "sk-test-secret", { keyHash: "oai-0123456789abcdef", ...extra });
}
