/**
 * One check of one key against its real upstream: the requests of its provider, and the
 * provider's decision on the answers (docs/checker.md, one section per provider).
 */
import type { CheckSubject } from "../domain/key-check";
import type { FamilyTable } from "../domain/model-families";
import type { ProviderId } from "../domain/types";
import { anthropicRequest, decideAnthropic } from "./anthropic-check";
import { azureRequest, decideAzure } from "./azure-check";
import { bedrockRequest, decideBedrock } from "./bedrock-check";
import { decideGoogleAi, googleAiRequest } from "./google-ai-check";
import { decideMistral, mistralRequest } from "./mistral-check";
import { decideOpenAi, openAiRequests } from "./openai-check";
import type { CheckOutcome, UpstreamAnswer } from "./upstream-answer";
import { sendUpstream } from "./upstream-client";
import type { UpstreamRequest } from "./upstream-request";
import { decideVertex, decideVertexToken, UNREADABLE_KEY, vertexModelRequests, vertexTokenRequest } from "./vertex-check";

/** Where each provider's keys are checked (KEYPOOL_*_BASE_URL, KEYPOOL_VERTEX_TOKEN_URL). */
export interface UpstreamUrls {
  openaiBaseUrl: string;
  anthropicBaseUrl: string;
  googleAiBaseUrl: string;
  mistralBaseUrl: string;
  /** A template: `{resource}` is the key's Azure resource name. */
  azureBaseUrl: string;
  /** A template: `{region}` is the key's AWS region. */
  bedrockBaseUrl: string;
  /** A template: `{region}` is the key's GCP region. */
  vertexBaseUrl: string;
  vertexTokenUrl: string;
}

export interface UpstreamCheckOptions extends UpstreamUrls {
  /** KEYPOOL_CHECK_TIMEOUT: per request. */
  timeoutMs: number;
  families: FamilyTable;
  /** Wall-clock time for signatures (SigV4, the Vertex assertion); default Date.now. */
  now?: () => number;
}

/** The providers upstreamCheck has requests and a decision for (docs/checker.md). */
export const CHECKED_PROVIDERS: ReadonlySet<ProviderId> = new Set<ProviderId>([
  "openai",
  "anthropic",
  "google",
  "mistral",
  "azure",
  "bedrock",
  "vertex",
]);

export type CheckKey = (subject: CheckSubject, cancel: AbortSignal) => Promise<CheckOutcome>;

export function upstreamCheck(options: UpstreamCheckOptions): CheckKey {
  const send = (request: UpstreamRequest, cancel: AbortSignal): Promise<UpstreamAnswer> =>
    sendUpstream(request, options.timeoutMs, cancel);
  const maybe = (request: UpstreamRequest | undefined, cancel: AbortSignal): Promise<UpstreamAnswer | undefined> =>
    request ? send(request, cancel) : Promise.resolve(undefined);
  const now = () => new Date((options.now ?? Date.now)());
  const { families } = options;

  // Each provider's secret goes to its own address only.
  const checks: Record<ProviderId, CheckKey> = {
    openai: async (subject, cancel) => {
      const requests = openAiRequests(subject, options.openaiBaseUrl);
      const [models, liveness, organizations] = await Promise.all([
        maybe(requests.models, cancel),
        send(requests.liveness, cancel),
        maybe(requests.organizations, cancel),
      ]);
      return decideOpenAi(subject, { models, liveness, organizations }, families);
    },
    anthropic: async (subject, cancel) =>
      decideAnthropic(subject, await send(anthropicRequest(subject, options.anthropicBaseUrl), cancel), families),
    google: async (subject, cancel) =>
      decideGoogleAi(subject, await send(googleAiRequest(subject, options.googleAiBaseUrl), cancel), families),
    mistral: async (subject, cancel) =>
      decideMistral(subject, await send(mistralRequest(subject, options.mistralBaseUrl), cancel), families),
    azure: async (subject, cancel) => decideAzure(subject, await send(azureRequest(subject, options.azureBaseUrl), cancel), families),
    bedrock: async (subject, cancel) =>
      decideBedrock(subject, await send(await bedrockRequest(subject, options.bedrockBaseUrl, now()), cancel), families),
    vertex: async (subject, cancel) => {
      const tokenRequest = await vertexTokenRequest(subject, options.vertexTokenUrl, now());
      if (!tokenRequest) return UNREADABLE_KEY;
      const token = decideVertexToken(await send(tokenRequest, cancel));
      if ("outcome" in token) return token.outcome;
      const requests = vertexModelRequests(subject, options.vertexBaseUrl, token.accessToken);
      const answers = await Promise.all(requests.map((r) => send(r, cancel)));
      return decideVertex(subject, answers, families);
    },
  };
  return (subject, cancel) => checks[subject.provider](subject, cancel);
}
