/**
 * An upstream's answer to one request of a check, as the decision functions (openai-check.ts,
 * anthropic-check.ts) read it: the HTTP side (upstream-client.ts) makes these, tests write them
 * by hand.
 */
import type { KeyFinding } from "../domain/key-check";

export type UpstreamAnswer =
  | {
      kind: "response";
      status: number;
      /** Lower-case names. */
      headers: Readonly<Record<string, string>>;
      /** The body parsed as JSON; undefined when it was not JSON. */
      body: unknown;
    }
  /** No answer: the connection failed, or the request timed out. */
  | { kind: "failed"; why: "network" | "timeout" };

/** Something worth a warning in the log: by status and error type, never the body. */
export interface CheckWarning {
  request: string;
  status: number;
  errorType: string;
}

/** What a check concluded. */
export type CheckOutcome =
  /** The key was checked: apply this (possibly empty) finding and set last_checked. */
  | { kind: "checked"; finding: KeyFinding; warnings: CheckWarning[] }
  /** The check proved nothing: the key is left as it is and tried again after `afterMs`. */
  | { kind: "retry"; afterMs: number; why: string };

/** Network errors, timeouts and 5xx are tried again after this long (docs/checker.md). */
export const RETRY_AFTER_FAILURE_MS = 60_000;
/** An Anthropic 429 rate_limit_error is tried again after this long. */
export const RETRY_AFTER_RATE_LIMIT_MS = 10_000;

/** `error.type` and `error.code` of an OpenAI or Anthropic error body, as short safe tokens. */
export function errorFields(body: unknown): { type: string; code: string; message: string } {
  const error = (body as { error?: unknown } | undefined)?.error;
  if (typeof error !== "object" || error === null) return { type: "", code: "", message: "" };
  const e = error as { type?: unknown; code?: unknown; message?: unknown };
  return { type: token(e.type), code: token(e.code), message: typeof e.message === "string" ? e.message : "" };
}

/**
 * Upstream text may quote part of the key (OpenAI's 401 does): only identifier-like values
 * reach logs and reasons, and only this long.
 */
function token(value: unknown): string {
  if (typeof value !== "string") return "";
  return /^[A-Za-z0-9_.-]{1,64}$/.test(value) ? value : "";
}

export function header(answer: UpstreamAnswer, name: string): string | undefined {
  return answer.kind === "response" ? answer.headers[name] : undefined;
}
