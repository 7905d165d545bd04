import type { ProviderId } from "../types";
import type { CredentialShape } from "./credential";

/** One row of a family table: models matching `pattern` belong to `family`. */
export interface FamilyRule {
  pattern: RegExp;
  family: string;
}

/** Which response headers carry rate-limit news, and how their reset values are written. */
export interface RateLimitHeaderScheme {
  /** Matches a lower-case header name; group 1 is the dimension (e.g. "requests", "tokens"). */
  remaining: RegExp;
  reset: RegExp;
  /** "go-duration": a wait such as "6m0s"; "rfc3339": the instant the quota is back. */
  resetFormat: "go-duration" | "rfc3339";
}

/** A provider as data: everything the pool needs to know about one upstream API. */
export interface ProviderInfo {
  id: ProviderId;
  /** Shown to people (messages, docs). */
  displayName: string;
  /** Starts every key hash of this provider, e.g. "oai-". */
  hashPrefix: string;
  /** Families a new key serves when its spec names none. */
  defaultFamilies: readonly string[];
  /** Ordered: the first matching rule wins, so specific patterns come before general ones. */
  familyRules: readonly FamilyRule[];
  /** Models that must never be served by trial keys. */
  embeddingModels: RegExp;
  rateLimitHeaders: RateLimitHeaderScheme;
  /** The parts of a key and their shapes, checked when a key is added. */
  credential: CredentialShape;
  /**
   * "vendor": the provider makes the models its table names, so a model name alone may choose
   * it. "host": it serves other vendors' models (Azure, Bedrock, Vertex), so a model name
   * chooses it only when no vendor claims the model and no other host does
   * (docs/keys-and-models.md, "How a model resolves").
   */
  role: "vendor" | "host";
}

/** For upstreams whose answers carry no rate-limit headers: only retry-after counts. */
export const NO_RATE_LIMIT_HEADERS: RateLimitHeaderScheme = {
  remaining: /(?!)/,
  reset: /(?!)/,
  resetFormat: "go-duration",
};
