/**
 * What OpenAI's answers mean for a key (docs/checker.md, "OpenAI"): pure functions, answers in,
 * outcome out. The requests themselves are described here too, so that the HTTP side only sends
 * what it is given.
 */
import type { CheckSubject, KeyFinding } from "../domain/key-check";
import type { FamilyTable } from "../domain/model-families";
import {
  errorFields,
  header,
  RETRY_AFTER_FAILURE_MS,
  type CheckOutcome,
  type CheckWarning,
  type UpstreamAnswer,
} from "./upstream-answer";
import type { UpstreamRequest } from "./upstream-request";

/** A key whose cheap-model limit is this many requests or fewer is a trial key. */
export const TRIAL_REQUEST_LIMIT = 250;

/**
 * The liveness request: invalid on purpose (max_tokens -1, an empty message), so that the
 * upstream refuses it before spending anything, with the cheap model's rate-limit headers.
 */
export const LIVENESS_BODY = {
  model: "gpt-3.5-turbo",
  max_tokens: -1,
  messages: [{ role: "user", content: "" }],
} as const;

export interface OpenAiRequests {
  models?: UpstreamRequest;
  liveness: UpstreamRequest;
  organizations?: UpstreamRequest;
}

/** A first check asks three things; a later one only whether the key is alive. */
export function openAiRequests(subject: CheckSubject, baseUrl: string): OpenAiRequests {
  const headers: Record<string, string> = { authorization: `Bearer ${subject.secret}` };
  if (subject.organizationId) headers["openai-organization"] = subject.organizationId;
  const url = (path: string) => new URL(path, withSlash(baseUrl)).toString();
  const liveness: UpstreamRequest = {
    name: "liveness",
    method: "POST",
    url: url("v1/chat/completions"),
    headers: { ...headers, "content-type": "application/json" },
    body: JSON.stringify(LIVENESS_BODY),
  };
  if (!subject.firstCheck) return { liveness };
  return {
    models: { name: "models", method: "GET", url: url("v1/models"), headers },
    liveness,
    // A key bound to an organization (a clone, or one the operator bound) makes no clones.
    ...(subject.organizationId
      ? {}
      : { organizations: { name: "organizations", method: "GET", url: url("v1/organizations"), headers } }),
  };
}

/** "https://gw.example/openai" and "https://gw.example/openai/" both keep their path. */
export function withSlash(baseUrl: string): string {
  return baseUrl.endsWith("/") ? baseUrl : `${baseUrl}/`;
}

export interface OpenAiAnswers {
  models?: UpstreamAnswer;
  liveness: UpstreamAnswer;
  organizations?: UpstreamAnswer;
}

/** How one answer bears on the key. */
type Verdict =
  | { kind: "revoked" | "over_quota"; reason: string }
  | { kind: "retry"; why: string }
  | { kind: "works" }
  | { kind: "alive" }
  | { kind: "unchanged"; warning?: CheckWarning };

/** The outcome of a check from its answers (every row of docs/checker.md's OpenAI table). */
export function decideOpenAi(subject: CheckSubject, answers: OpenAiAnswers, families: FamilyTable): CheckOutcome {
  const trial = trialFrom(answers.liveness) ?? subject.trial;
  const named: [string, UpstreamAnswer | undefined][] = [
    ["liveness", answers.liveness],
    ["models", answers.models],
    ["organizations", answers.organizations],
  ];
  const verdicts = named
    .filter((n): n is [string, UpstreamAnswer] => n[1] !== undefined)
    .map(([name, answer]) => ({ name, verdict: verdictOf(name, answer, trial) }));

  const finding: KeyFinding = {};
  const trialNow = trialFrom(answers.liveness);
  if (trialNow !== undefined) finding.trial = trialNow;

  for (const kind of ["revoked", "over_quota"] as const) {
    const hit = verdicts.find((v) => v.verdict.kind === kind);
    if (hit && (hit.verdict.kind === "revoked" || hit.verdict.kind === "over_quota")) {
      return { kind: "checked", finding: { ...finding, state: kind, reason: hit.verdict.reason }, warnings: [] };
    }
  }
  const retry = verdicts.find((v) => v.verdict.kind === "retry");
  if (retry && retry.verdict.kind === "retry") {
    return { kind: "retry", afterMs: RETRY_AFTER_FAILURE_MS, why: `${retry.name}: ${retry.verdict.why}` };
  }

  const warnings: CheckWarning[] = [];
  for (const v of verdicts) if (v.verdict.kind === "unchanged" && v.verdict.warning) warnings.push(v.verdict.warning);
  const livenessVerdict = verdicts[0].verdict;
  if (livenessVerdict.kind === "works") finding.state = "active";

  if (answers.models?.kind === "response" && answers.models.status === 200) {
    const found = familiesFromModels(answers.models.body, trial, families);
    if (found.length > 0) finding.modelFamilies = found;
  }
  if (answers.organizations?.kind === "response" && answers.organizations.status === 200) {
    const orgs = organizationsFrom(answers.organizations.body);
    if (orgs.bound) {
      finding.organizationId = orgs.bound;
      finding.cloneOrganizations = orgs.others;
    }
  }
  return { kind: "checked", finding, warnings };
}

function verdictOf(name: string, answer: UpstreamAnswer, trial: boolean): Verdict {
  if (answer.kind === "failed") return { kind: "retry", why: answer.why === "timeout" ? "timed out" : "network error" };
  const { status } = answer;
  if (status >= 500) return { kind: "retry", why: `upstream answered ${status}` };
  if (status === 401) return { kind: "revoked", reason: "the upstream answered 401 Unauthorized: it rejected the key" };
  const { type, code } = errorFields(answer.body);
  const is = (what: string) => type === what || code === what;
  if (status === 429) {
    if (is("insufficient_quota")) {
      return { kind: "over_quota", reason: "the upstream answered 429 insufficient_quota: the key's quota is used up" };
    }
    if (is("billing_not_active")) {
      return { kind: "over_quota", reason: "the upstream answered 429 billing_not_active: the key's billing is not active" };
    }
    if (is("access_terminated")) {
      return { kind: "revoked", reason: "the upstream answered 429 access_terminated: the key's access was terminated" };
    }
    if (type === "requests") {
      if (trialFrom(answer) ?? trial) {
        return {
          kind: "over_quota",
          reason: "the upstream rate limits this trial key on the cheap model: it is shared by too many",
        };
      }
      return { kind: "alive" };
    }
    if (type === "tokens") return { kind: "alive" };
    return { kind: "unchanged", warning: { request: name, status, errorType: type || code || "unknown" } };
  }
  // The liveness request is invalid on purpose: a 400 invalid_request_error means the key works.
  if (name === "liveness" && status === 400 && (type === "invalid_request_error" || type === "")) return { kind: "works" };
  if (name === "liveness" && status >= 200 && status < 300) return { kind: "works" };
  if (name !== "liveness" && status === 200) return { kind: "works" };
  return { kind: "unchanged", warning: { request: name, status, errorType: type || code || "none" } };
}

/** true / false from x-ratelimit-limit-requests; undefined when the header is missing or not a number. */
export function trialFrom(answer: UpstreamAnswer): boolean | undefined {
  const raw = header(answer, "x-ratelimit-limit-requests");
  if (raw === undefined || !/^\d+$/.test(raw.trim())) return undefined;
  return Number(raw) <= TRIAL_REQUEST_LIMIT;
}

/**
 * The families of the model ids in a /v1/models body, in the family table's order. Quirks: a
 * gpt-4-32k snapshot without gpt-4-32k itself does not grant gpt4-32k; a trial key does not
 * serve dall-e. Ids that map to no family are skipped.
 */
export function familiesFromModels(body: unknown, trial: boolean, families: FamilyTable): string[] {
  const data = (body as { data?: unknown } | undefined)?.data;
  if (!Array.isArray(data)) return [];
  const ids = new Set<string>();
  for (const item of data) {
    const id = (item as { id?: unknown } | null)?.id;
    if (typeof id === "string") ids.add(id);
  }
  const found = new Set<string>();
  for (const id of ids) {
    const family = families.familyFor("openai", id);
    if (family === undefined) continue;
    if (family === "gpt4-32k" && !ids.has("gpt-4-32k")) continue;
    if (family === "dall-e" && trial) continue;
    found.add(family);
  }
  const ordered: string[] = [];
  for (const rule of families.rulesOf("openai")) {
    if (found.has(rule.family) && !ordered.includes(rule.family)) ordered.push(rule.family);
  }
  return ordered;
}

/** Organizations read from one answer at most: each is a clone in the pool. */
export const MAX_ORGANIZATIONS = 64;

/** The organization to bind (the default one, else the first) and the others (MAX_ORGANIZATIONS in all). */
export function organizationsFrom(body: unknown): { bound?: string; others: string[] } {
  const data = (body as { data?: unknown } | undefined)?.data;
  if (!Array.isArray(data)) return { others: [] };
  const orgs: { id: string; isDefault: boolean }[] = [];
  for (const item of data.slice(0, MAX_ORGANIZATIONS)) {
    const o = item as { id?: unknown; is_default?: unknown } | null;
    if (typeof o?.id === "string" && o.id.length > 0 && o.id.length <= 256 && !orgs.some((x) => x.id === o.id)) {
      orgs.push({ id: o.id, isDefault: o.is_default === true });
    }
  }
  if (orgs.length === 0) return { others: [] };
  const bound = (orgs.find((o) => o.isDefault) ?? orgs[0]).id;
  return { bound, others: orgs.filter((o) => o.id !== bound).map((o) => o.id) };
}
