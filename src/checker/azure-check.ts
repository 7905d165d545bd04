/**
 * What Azure OpenAI's answer means for a key (docs/checker.md, "Azure OpenAI"): a key is one
 * deployment of one resource, so the check asks for that deployment (`GET
 * /openai/deployments/{deployment}`, header `api-key`); its answer names the one model the
 * deployment runs, and so the one family the key serves.
 */
import type { CheckSubject, KeyFinding } from "../domain/key-check";
import type { FamilyTable } from "../domain/model-families";
import { providerInfo } from "../domain/providers";
import { splitCredential } from "../domain/providers/credential";
import { combineVerdicts, failureVerdict, overQuota, rateLimited, revoked, type Verdict } from "./check-verdict";
import { familiesOfModels } from "./model-list";
import { withSlash } from "./openai-check";
import { errorFields, type CheckOutcome, type UpstreamAnswer } from "./upstream-answer";
import type { UpstreamRequest } from "./upstream-request";
import { fillUrlTemplate } from "./url-template";

/**
 * A data-plane API version that still serves the deployments endpoint (the GA versions since
 * 2023-05-15 dropped it); its answer names the deployment's model.
 */
export const AZURE_API_VERSION = "2023-03-15-preview";

export function azureRequest(subject: CheckSubject, baseUrlTemplate: string): UpstreamRequest {
  const [resource, deployment, apiKey] = splitCredential(providerInfo("azure").credential, subject.secret);
  const base = fillUrlTemplate(baseUrlTemplate, { resource });
  return {
    name: "deployment",
    method: "GET",
    url: new URL(`openai/deployments/${encodeURIComponent(deployment)}?api-version=${AZURE_API_VERSION}`, withSlash(base)).toString(),
    headers: { "api-key": apiKey },
  };
}

export function decideAzure(subject: CheckSubject, answer: UpstreamAnswer, families: FamilyTable): CheckOutcome {
  const works: KeyFinding = { state: "active" };
  if (answer.kind === "response" && answer.status === 200 && subject.firstCheck) {
    const model = (answer.body as { model?: unknown } | undefined)?.model;
    if (typeof model === "string") {
      const found = familiesOfModels("azure", [openAiModelName(model)], families);
      if (found.length > 0) works.modelFamilies = found;
    }
  }
  return combineVerdicts([{ name: "deployment", verdict: azureVerdict(answer) }], works);
}

/** Azure writes gpt-3.5 as "gpt-35" (no dots in its model names); the family table has OpenAI's names. */
export function openAiModelName(azureModel: string): string {
  return azureModel.replace(/^gpt-35/, "gpt-3.5");
}

/** Azure's 403 when the resource's spending quota is used up. */
const OUT_OF_QUOTA = /out of call volume quota/i;

function azureVerdict(answer: UpstreamAnswer): Verdict {
  if (answer.kind === "failed" || answer.status >= 500) return failureVerdict(answer);
  const { status } = answer;
  if (status === 200) return { kind: "works" };
  const { code, message } = errorFields(answer.body);
  if (status === 401) return revoked("the upstream answered 401: it rejected the key (or the resource is gone)");
  if (status === 403) {
    if (OUT_OF_QUOTA.test(message)) return overQuota("the upstream answered 403 out of call volume quota: the resource's quota is used up");
    return revoked(`the upstream answered 403${code && code !== "403" ? ` ${code}` : ""}: the key may not use the deployment`);
  }
  if (status === 404) return revoked(`the upstream answered 404${code ? ` ${code}` : ""}: the key's deployment does not exist`);
  if (status === 429) return rateLimited("429");
  return { kind: "unchanged", warning: { request: "deployment", status, errorType: code || "none" } };
}
