/**
 * What the fake upstream answers Google AI, Mistral, Azure OpenAI, AWS Bedrock and GCP Vertex keys
 * on the endpoints the key checker calls, per behaviour (behaviours.ts), in each upstream's own
 * error shapes (docs/checker.md, "The fake upstream"). A behaviour a provider has no meaning for
 * (trial, multi-org, 32k-quirk) answers like a working key.
 */
import {
  BEDROCK_MODELS,
  GOOGLE_AI_MODELS,
  MISTRAL_MODELS,
  VERTEX_MODELS,
  type Behaviour,
} from "./behaviours";
import type { FakeAnswer } from "./fake-answer";

const googleError = (code: number, status: string, message: string, details: unknown[] = []) => ({
  status: code,
  body: { error: { code, message, status, details } },
});
const errorInfo = (reason: string) => ({ "@type": "type.googleapis.com/google.rpc.ErrorInfo", reason, domain: "googleapis.com" });
const quotaFailure = (quotaId: string) => ({ "@type": "type.googleapis.com/google.rpc.QuotaFailure", violations: [{ quotaId }] });

/** Google AI, `GET /v1beta/models`. */
export function googleAiModels(behaviour: Behaviour | undefined): FakeAnswer {
  switch (behaviour) {
    case undefined:
    case "revoked":
      return googleError(400, "INVALID_ARGUMENT", "API key not valid. Please pass a valid API key.", [errorInfo("API_KEY_INVALID")]);
    case "terminated":
      return googleError(403, "PERMISSION_DENIED", "Permission denied: Consumer has been suspended.", [errorInfo("CONSUMER_SUSPENDED")]);
    case "over-quota":
      return googleError(429, "RESOURCE_EXHAUSTED", "You exceeded your current quota.", [quotaFailure("GenerateRequestsPerDayPerProjectPerModel-FreeTier")]);
    case "rate-limited":
      return { ...googleError(429, "RESOURCE_EXHAUSTED", "Resource has been exhausted.", [quotaFailure("GenerateRequestsPerMinutePerProjectPerModel")]), headers: { "retry-after": "10" } };
    case "5xx":
      return googleError(503, "UNAVAILABLE", "The model is overloaded. Please try again later.");
    default:
      return { status: 200, body: { models: GOOGLE_AI_MODELS.map((name) => ({ name, displayName: name.slice(7) })) } };
  }
}

/** Mistral, `GET /v1/models` (told from OpenAI's by the key's name). */
export function mistralModels(behaviour: Behaviour | undefined): FakeAnswer {
  switch (behaviour) {
    case undefined:
    case "revoked":
      return { status: 401, body: { message: "Unauthorized", request_id: "fake" } };
    case "terminated":
      return { status: 403, body: { message: "Forbidden", request_id: "fake" } };
    case "over-quota":
      return { status: 429, body: { object: "error", message: "Monthly usage limit exceeded for this workspace.", type: "invalid_request_error", code: "1300" } };
    case "rate-limited":
      return { status: 429, body: { message: "Requests rate limit exceeded" } };
    case "5xx":
      return { status: 503, body: { object: "error", message: "Service unavailable", type: "service_unavailable" } };
    default:
      return { status: 200, body: { object: "list", data: MISTRAL_MODELS.map((id) => ({ id, object: "model", owned_by: "mistralai" })) } };
  }
}

const azureError = (status: number, code: string, message: string): FakeAnswer => ({ status, body: { error: { code, message } } });

/**
 * Azure OpenAI, `GET /openai/deployments/{deployment}`: the deployment runs the model it is named
 * after (deployments usually are); a deployment named `missing-*` does not exist.
 */
export function azureDeployment(behaviour: Behaviour | undefined, deployment: string, apiVersion: string | null): FakeAnswer {
  if (!apiVersion) return azureError(404, "404", "Resource not found");
  switch (behaviour) {
    case undefined:
    case "revoked":
      return azureError(401, "401", "Access denied due to invalid subscription key or wrong API endpoint. Make sure to provide a valid key for an active subscription and use a correct regional API endpoint for your resource.");
    case "terminated":
      return azureError(403, "AccountDeactivated", "The resource is disabled.");
    case "over-quota":
      return azureError(403, "403", "Out of call volume quota for OpenAI API. Quota will be replenished in 2.00:00:00.");
    case "rate-limited":
      return { ...azureError(429, "429", "Requests to the Deployments_Get Operation have exceeded call rate limit of your current pricing tier."), headers: { "retry-after": "10", "retry-after-ms": "10000" } };
    case "5xx":
      return azureError(500, "InternalServerError", "The server had an error while processing your request.");
    default:
      if (deployment.startsWith("missing")) return azureError(404, "DeploymentNotFound", "The API deployment for this resource does not exist.");
      return { status: 200, body: { id: deployment, model: deployment, owner: "organization-owner", status: "succeeded", object: "deployment" } };
  }
}

const awsError = (status: number, type: string, message: string): FakeAnswer => ({
  status,
  headers: { "x-amzn-errortype": `${type}:http://internal.amazon.com/coral/com.amazon.bedrock/` },
  body: { message },
});

/** AWS Bedrock, `GET /foundation-models`, once the signature has been verified (sigv4-verify.ts). */
export function bedrockModels(behaviour: Behaviour | undefined): FakeAnswer {
  switch (behaviour) {
    case undefined:
    case "revoked":
    case "terminated":
      return awsError(403, "UnrecognizedClientException", "The security token included in the request is invalid.");
    case "over-quota":
      return awsError(400, "ServiceQuotaExceededException", "Your account has exceeded its quota.");
    case "rate-limited":
      return awsError(429, "ThrottlingException", "Rate exceeded");
    case "5xx":
      return awsError(503, "ServiceUnavailableException", "Service unavailable.");
    default:
      return {
        status: 200,
        body: { modelSummaries: BEDROCK_MODELS.map((modelId) => ({ modelId, providerName: modelId.split(".")[0], modelLifecycle: { status: "ACTIVE" } })) },
      };
  }
}

export function awsSignatureError(type: string, message: string): FakeAnswer {
  return awsError(403, type, message);
}

/** GCP Vertex, `GET /v1beta1/publishers/{publisher}/models`, for a token the fake issued. */
export function vertexModels(behaviour: Behaviour | undefined, publisher: string, project: string | undefined): FakeAnswer {
  if (behaviour === undefined) return googleError(401, "UNAUTHENTICATED", "Request had invalid authentication credentials.");
  if (!project) return googleError(403, "PERMISSION_DENIED", "No quota project.", [errorInfo("USER_PROJECT_DENIED")]);
  switch (behaviour) {
    case "terminated":
      return googleError(403, "PERMISSION_DENIED", "Vertex AI API has not been used in this project or it is disabled.", [errorInfo("SERVICE_DISABLED")]);
    case "over-quota":
      return googleError(403, "PERMISSION_DENIED", "This API method requires billing to be enabled.", [errorInfo("BILLING_DISABLED")]);
    case "rate-limited":
      return googleError(429, "RESOURCE_EXHAUSTED", "Quota exceeded for aiplatform.googleapis.com/online_prediction_requests_per_base_model.", [quotaFailure("OnlinePredictionRequestsPerMinutePerProjectPerBaseModel")]);
    case "5xx":
      return googleError(503, "UNAVAILABLE", "The service is currently unavailable.");
    default:
      return { status: 200, body: { publisherModels: (VERTEX_MODELS[publisher] ?? []).map((name) => ({ name, versionId: "001" })) } };
  }
}

/** Vertex's token endpoint refusing an account. */
export function oauthError(status: number, error: string, description: string): FakeAnswer {
  return { status, body: { error, error_description: description } };
}
