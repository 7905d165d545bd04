/**
 * One check of one key against its real upstream: the requests of its provider, sent at once,
 * and the provider's decision on the answers.
 */
import type { CheckSubject } from "../domain/key-check";
import type { FamilyTable } from "../domain/model-families";
import type { ProviderId } from "../domain/types";
import { anthropicRequest, decideAnthropic } from "./anthropic-check";
import { decideOpenAi, openAiRequests } from "./openai-check";
import type { CheckOutcome, UpstreamAnswer } from "./upstream-answer";
import { sendUpstream } from "./upstream-client";
import type { UpstreamRequest } from "./upstream-request";

export interface UpstreamCheckOptions {
  openaiBaseUrl: string;
  anthropicBaseUrl: string;
  /** KEYPOOL_CHECK_TIMEOUT: per request. */
  timeoutMs: number;
  families: FamilyTable;
}

/** The providers upstreamCheck has requests and a decision for (docs/checker.md). */
export const CHECKED_PROVIDERS: ReadonlySet<ProviderId> = new Set<ProviderId>(["openai", "anthropic"]);

export type CheckKey = (subject: CheckSubject, cancel: AbortSignal) => Promise<CheckOutcome>;

export function upstreamCheck(options: UpstreamCheckOptions): CheckKey {
  const send = (request: UpstreamRequest | undefined, cancel: AbortSignal): Promise<UpstreamAnswer | undefined> =>
    request ? sendUpstream(request, options.timeoutMs, cancel) : Promise.resolve(undefined);
  return async (subject, cancel) => {
    if (subject.provider === "anthropic") {
      const answer = await sendUpstream(anthropicRequest(subject, options.anthropicBaseUrl), options.timeoutMs, cancel);
      return decideAnthropic(subject, answer, options.families);
    }
    // A key of any other provider must never reach OpenAI's address with its secret.
    if (subject.provider !== "openai") throw new Error(`no check for provider ${subject.provider}`);
    const requests = openAiRequests(subject, options.openaiBaseUrl);
    const [models, liveness, organizations] = await Promise.all([
      send(requests.models, cancel),
      send(requests.liveness, cancel),
      send(requests.organizations, cancel),
    ]);
    return decideOpenAi(subject, { models, liveness: liveness!, organizations }, options.families);
  };
}
