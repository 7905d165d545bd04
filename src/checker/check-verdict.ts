/**
 * The common shape of the newer providers' decisions (docs/checker.md, "Google AI" to "GCP
 * Vertex"): each answer of a check is read into a verdict by its provider's module, and the
 * verdicts of one check combine the same way for every provider. A definite answer (REVOKED, then
 * OVER_QUOTA) wins over a failed request; a failed or rate-limited request makes the check prove
 * nothing; otherwise the key works, and warnings say what was odd.
 */
import type { KeyFinding } from "../domain/key-check";
import {
  RETRY_AFTER_FAILURE_MS,
  RETRY_AFTER_RATE_LIMIT_MS,
  type CheckOutcome,
  type CheckWarning,
  type UpstreamAnswer,
} from "./upstream-answer";

/** How one answer bears on the key. */
export type Verdict =
  | { kind: "revoked" | "over_quota"; reason: string }
  | { kind: "retry"; afterMs: number; why: string }
  | { kind: "works" }
  /** The answer proves nothing about the key; the check still counts (a warning is logged). */
  | { kind: "unchanged"; warning: CheckWarning };

export const revoked = (reason: string): Verdict => ({ kind: "revoked", reason });
export const overQuota = (reason: string): Verdict => ({ kind: "over_quota", reason });
export const rateLimited = (what: string): Verdict => ({ kind: "retry", afterMs: RETRY_AFTER_RATE_LIMIT_MS, why: `rate limited (${what})` });

/** Network errors, timeouts and 5xx: the upstream's trouble, not the key's. */
export function failureVerdict(answer: UpstreamAnswer): Verdict {
  const why = answer.kind === "failed" ? (answer.why === "timeout" ? "timed out" : "network error") : `upstream answered ${answer.status}`;
  return { kind: "retry", afterMs: RETRY_AFTER_FAILURE_MS, why };
}

/**
 * The outcome of one check from its verdicts, by request name. `works` is the finding when every
 * verdict is `works` or `unchanged` and at least one is `works`: state ACTIVE plus what the answers
 * showed (families).
 */
export function combineVerdicts(verdicts: readonly { name: string; verdict: Verdict }[], works: KeyFinding): CheckOutcome {
  for (const kind of ["revoked", "over_quota"] as const) {
    for (const { verdict } of verdicts) {
      if (verdict.kind === kind) return { kind: "checked", finding: { state: kind, reason: verdict.reason }, warnings: [] };
    }
  }
  const retries = verdicts.filter((v) => v.verdict.kind === "retry");
  if (retries.length > 0) {
    // The longest wait wins: a 5xx beside a 429 waits the minute.
    const longest = retries
      .map((r) => ({ name: r.name, verdict: r.verdict as Extract<Verdict, { kind: "retry" }> }))
      .reduce((a, b) => (b.verdict.afterMs > a.verdict.afterMs ? b : a));
    return { kind: "retry", afterMs: longest.verdict.afterMs, why: `${longest.name}: ${longest.verdict.why}` };
  }
  const warnings = verdicts.flatMap((v) => (v.verdict.kind === "unchanged" ? [v.verdict.warning] : []));
  const proved = verdicts.some((v) => v.verdict.kind === "works");
  return { kind: "checked", finding: proved ? works : {}, warnings };
}
