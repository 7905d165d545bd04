/**
 * Google APIs' error body (Google AI and Vertex alike): `{"error": {"code", "message", "status",
 * "details": [...]}}`, whose details carry an ErrorInfo `reason` (API_KEY_INVALID,
 * BILLING_DISABLED, ...) and QuotaFailure violations naming the quota hit. Only identifier-like
 * values are read: a message may quote what the request sent.
 */
export interface GoogleError {
  /** "INVALID_ARGUMENT", "PERMISSION_DENIED", "RESOURCE_EXHAUSTED", ... */
  status: string;
  /** The ErrorInfo reason, "" when none. */
  reason: string;
  /** The QuotaFailure violations' quota ids. */
  quotaIds: string[];
}

const TOKEN = /^[A-Za-z0-9_.-]{1,128}$/;
const MAX_DETAILS = 16;

export function googleError(body: unknown): GoogleError {
  const error = (body as { error?: unknown } | undefined)?.error;
  const out: GoogleError = { status: "", reason: "", quotaIds: [] };
  if (typeof error !== "object" || error === null) return out;
  const e = error as { status?: unknown; details?: unknown };
  out.status = token(e.status);
  if (!Array.isArray(e.details)) return out;
  for (const detail of e.details.slice(0, MAX_DETAILS)) {
    const d = detail as { reason?: unknown; violations?: unknown } | null;
    if (!out.reason && token(d?.reason)) out.reason = token(d?.reason);
    if (Array.isArray(d?.violations)) {
      for (const v of d.violations.slice(0, MAX_DETAILS)) {
        const id = token((v as { quotaId?: unknown } | null)?.quotaId);
        if (id) out.quotaIds.push(id);
      }
    }
  }
  return out;
}

/** A quota counted per day is used up for the day: the key is over quota, not just busy. */
export function isDailyQuota(error: GoogleError): boolean {
  return error.quotaIds.some((id) => /PerDay/i.test(id));
}

function token(value: unknown): string {
  return typeof value === "string" && TOKEN.test(value) ? value : "";
}
