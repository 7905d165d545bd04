/**
 * What the fake upstream does for each key. A key's behaviour comes from its name or is set at
 * run time (FakeUpstream.setBehaviour). Names: `sk-fake-<behaviour>-<anything>` (OpenAI),
 * `sk-ant-fake-<behaviour>-<anything>` (Anthropic), `AIza-fake-<behaviour>-<anything>` (Google AI),
 * `mistral-fake-<behaviour>-<anything>` (Mistral), an Azure api key
 * `azure-fake-<behaviour>-<anything>`, a Bedrock access key id `AKIAFAKE<BEHAVIOUR><digits>` (the
 * behaviour in capitals without '-', e.g. AKIAFAKEOVERQUOTA01), a Vertex client email
 * `<behaviour>-<anything>@keypool-fake.iam.gserviceaccount.com`. Any other key is unknown to the
 * fake, as to a real upstream: rejected.
 */

export const BEHAVIOURS = [
  /** Answers like a paid key: models, the invalid-request 400, one organization. */
  "working",
  /** 401 to everything. */
  "revoked",
  /** OpenAI: 429 insufficient_quota; Anthropic: 400 "credit balance is too low". */
  "over-quota",
  /** OpenAI: a request limit of 200 (a trial key) and dall-e among its models. */
  "trial",
  /** OpenAI: three organizations, the first the default; the others see fewer models. */
  "multi-org",
  /** OpenAI: a gpt-4-32k snapshot without gpt-4-32k itself. */
  "32k-quirk",
  /** Answers only after a long delay (FakeUpstreamOptions.slowMs): checks time out. */
  "slow",
  /** OpenAI 503, Anthropic 529 overloaded. */
  "5xx",
  /** The connection is closed without an answer. */
  "refused",
  /** OpenAI: 429 access_terminated; Anthropic: 400 "organization has been disabled". */
  "terminated",
  /** OpenAI: 429 of type requests; Anthropic: 429 rate_limit_error. */
  "rate-limited",
] as const;

export type Behaviour = (typeof BEHAVIOURS)[number];

export function isBehaviour(value: string): value is Behaviour {
  return (BEHAVIOURS as readonly string[]).includes(value);
}

/** Longest names first, so that a prefix never shadows a longer name. */
const BY_LENGTH = [...BEHAVIOURS].sort((a, b) => b.length - a.length);

/** The prefixes of plain fake keys, before their behaviour. */
const KEY_PREFIXES = ["sk-ant-fake-", "sk-fake-", "AIza-fake-", "mistral-fake-", "azure-fake-"];

/** The domain of the fake's Vertex service accounts. */
export const FAKE_VERTEX_DOMAIN = "keypool-fake.iam.gserviceaccount.com";

/** The behaviour a key's name asks for, or undefined for a key the fake does not know. */
export function behaviourFromName(key: string): Behaviour | undefined {
  const aws = /^AKIAFAKE([A-Z0-9]+?)\d*$/.exec(key);
  if (aws) return BY_LENGTH.find((name) => aws[1] === name.replace(/-/g, "").toUpperCase());
  const email = key.endsWith(`@${FAKE_VERTEX_DOMAIN}`) ? key.slice(0, key.indexOf("@")) : undefined;
  const prefix = KEY_PREFIXES.find((p) => key.startsWith(p));
  const rest = email ?? (prefix === undefined ? undefined : key.slice(prefix.length));
  if (rest === undefined) return undefined;
  return BY_LENGTH.find((name) => rest === name || rest.startsWith(`${name}-`));
}

/** The access key id of a fake Bedrock key: `AKIAFAKE`, the behaviour in capitals, digits. */
export function fakeAwsAccessKeyId(behaviour: Behaviour, n = 1): string {
  return `AKIAFAKE${behaviour.replace(/-/g, "").toUpperCase()}${String(n).padStart(8, "0")}`;
}

/** The secret access key the fake expects with a fake access key id (any other fails its signature). */
export function fakeAwsSecret(accessKeyId: string): string {
  return `fake/secret+${accessKeyId}`;
}

/** A Vertex client email of this behaviour. */
export function fakeVertexEmail(behaviour: Behaviour, n = 1): string {
  return `${behaviour}-${n}@${FAKE_VERTEX_DOMAIN}`;
}

/** Model ids each newer provider lists for a working key (a few unknown to keypool's tables among them). */
export const GOOGLE_AI_MODELS = ["models/gemini-2.0-flash", "models/gemini-2.0-flash-lite", "models/gemini-2.5-pro", "models/text-embedding-004", "models/aqa"];
export const MISTRAL_MODELS = ["mistral-small-latest", "mistral-large-latest", "codestral-latest", "mistral-embed", "mistral-ocr-latest"];
export const BEDROCK_MODELS = ["anthropic.claude-3-haiku-20240307-v1:0", "anthropic.claude-3-5-sonnet-20240620-v1:0", "meta.llama3-8b-instruct-v1:0", "amazon.titan-text-express-v1"];
export const VERTEX_MODELS: Record<string, string[]> = {
  anthropic: ["publishers/anthropic/models/claude-3-5-haiku", "publishers/anthropic/models/claude-3-5-sonnet-v2"],
  mistralai: ["publishers/mistralai/models/mistral-large", "publishers/mistralai/models/codestral"],
  meta: ["publishers/meta/models/llama-3.1-405b-instruct-maas"],
};

/** The default organization and the others of a multi-org key. */
export const MULTI_ORG = { default: "org-fake-main", others: ["org-fake-second", "org-fake-third"] } as const;

const PAID_MODELS = ["gpt-3.5-turbo", "gpt-4", "gpt-4o", "gpt-4o-mini", "o3-mini", "dall-e-3", "text-embedding-3-small", "whisper-1"];
const TRIAL_MODELS = ["gpt-3.5-turbo", "gpt-4o-mini", "dall-e-2", "dall-e-3", "text-embedding-3-small"];
const QUIRK_MODELS = ["gpt-3.5-turbo", "gpt-4", "gpt-4-32k-0613", "gpt-4o"];
/** What a multi-org key sees under its second and third organization. */
const SMALL_ORG_MODELS = ["gpt-3.5-turbo", "gpt-4o-mini"];

/** The model ids /v1/models lists for a key of this behaviour under this organization. */
export function modelsFor(behaviour: Behaviour, organization: string | undefined): string[] {
  if (behaviour === "trial") return TRIAL_MODELS;
  if (behaviour === "32k-quirk") return QUIRK_MODELS;
  if (behaviour === "multi-org" && organization && organization !== MULTI_ORG.default) return SMALL_ORG_MODELS;
  return PAID_MODELS;
}

/** The organizations /v1/organizations lists for a key of this behaviour. */
export function organizationsFor(behaviour: Behaviour): { id: string; is_default: boolean }[] {
  if (behaviour === "multi-org") {
    return [MULTI_ORG.default, ...MULTI_ORG.others].map((id) => ({ id, is_default: id === MULTI_ORG.default }));
  }
  return [{ id: "org-fake-only", is_default: true }];
}

/** x-ratelimit-limit-requests for a key of this behaviour: 250 or less marks a trial key. */
export function requestLimitFor(behaviour: Behaviour): number {
  return behaviour === "trial" ? 200 : 10_000;
}
