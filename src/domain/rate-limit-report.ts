import { parseGoDuration } from "./duration";
import type { RateLimitHeaderScheme } from "./providers";
import { parseRetryAfter, parseRetryAfterMs, parseRfc3339Wait } from "./retry-after";

export interface ReportLimits {
  /** Cap on a hold taken from reset headers (KEYPOOL_MAX_RESET). */
  maxResetMs: number;
  /** Cooldown after a 429 that states no wait (KEYPOOL_DEFAULT_COOLDOWN). */
  defaultCooldownMs: number;
  /** Cap on any cooldown (KEYPOOL_MAX_COOLDOWN). */
  maxCooldownMs: number;
}

/**
 * What a report does to a key (docs/reports-and-lockout.md, "What a report does, by status"):
 * - revoke: 401;
 * - cooldown: a 429; cooldown_until = max(cooldown_until, now + waitMs), rate_limited_at = now;
 * - hold: any other status with usable headers; hold_until is replaced by now + waitMs;
 * - none: nothing usable came.
 */
export type ReportEffect =
  | { kind: "revoke" }
  | { kind: "cooldown"; waitMs: number }
  | { kind: "hold"; waitMs: number }
  | { kind: "none" };

interface Dimension {
  remaining?: number;
  resetMs?: number;
}

const COUNT = /^\d+(?:\.\d+)?$/;

/** Header names lower-cased (they are case-insensitive); on a clash the last one wins. */
export function lowerCaseHeaders(headers: Record<string, string>): Map<string, string> {
  const out = new Map<string, string>();
  for (const [name, value] of Object.entries(headers)) out.set(name.toLowerCase(), value);
  return out;
}

/** Remaining counts and reset waits per dimension (requests, tokens, ...); unparsable values dropped. */
function readDimensions(headers: Map<string, string>, scheme: RateLimitHeaderScheme, now: number) {
  const dims = new Map<string, Dimension>();
  const dim = (name: string) => {
    let d = dims.get(name);
    if (!d) dims.set(name, (d = {}));
    return d;
  };
  for (const [name, value] of headers) {
    const remaining = scheme.remaining.exec(name);
    if (remaining) {
      const text = value.trim();
      if (COUNT.test(text)) dim(remaining[1]).remaining = Number(text);
      continue;
    }
    const reset = scheme.reset.exec(name);
    if (reset) {
      const wait =
        scheme.resetFormat === "go-duration" ? parseGoDuration(value) : parseRfc3339Wait(value, now);
      if (wait !== undefined) dim(reset[1]).resetMs = wait;
    }
  }
  return [...dims.values()];
}

// Times are whole milliseconds; a fractional wait ("21.0032s") rounds up so a key is never early.
const wholeMs = (ms: number) => Math.max(0, Math.ceil(ms));

const maxOf = (values: (number | undefined)[]) => {
  const present = values.filter((v): v is number => v !== undefined);
  return present.length === 0 ? undefined : Math.max(...present);
};

/**
 * The wait the rate-limit headers ask for, uncapped: 0 when every reported remaining count is
 * above 0; else the largest reset among exhausted dimensions (or, when none of those carries a
 * reset, or no remaining count came at all, the largest reset that came); undefined when no
 * usable header came.
 */
export function headerWait(dims: Dimension[]): number | undefined {
  const withRemaining = dims.filter((d) => d.remaining !== undefined);
  if (withRemaining.length > 0) {
    const exhausted = withRemaining.filter((d) => d.remaining! <= 0);
    if (exhausted.length === 0) return 0;
    const wait = maxOf(exhausted.map((d) => d.resetMs));
    if (wait !== undefined) return wait;
  }
  return maxOf(dims.map((d) => d.resetMs));
}

export function planReport(
  statusCode: number,
  headers: Record<string, string>,
  scheme: RateLimitHeaderScheme,
  now: number,
  limits: ReportLimits,
): ReportEffect {
  if (statusCode === 401) return { kind: "revoke" };
  const lower = lowerCaseHeaders(headers);
  const dims = readDimensions(lower, scheme, now);
  if (statusCode === 429) {
    const retryAfterMs = lower.has("retry-after-ms") ? parseRetryAfterMs(lower.get("retry-after-ms")!) : undefined;
    const retryAfter = lower.has("retry-after") ? parseRetryAfter(lower.get("retry-after")!, now) : undefined;
    // For a 429 the resets are the wait even when a remaining count says otherwise.
    const reset = maxOf(dims.map((d) => (d.remaining !== undefined && d.remaining <= 0 ? d.resetMs : undefined))) ??
      maxOf(dims.map((d) => d.resetMs));
    const wait = retryAfterMs ?? retryAfter ?? reset ?? limits.defaultCooldownMs;
    return { kind: "cooldown", waitMs: Math.min(wholeMs(wait), limits.maxCooldownMs) };
  }
  const wait = headerWait(dims);
  if (wait === undefined) return { kind: "none" };
  return { kind: "hold", waitMs: Math.min(wholeMs(wait), limits.maxResetMs) };
}
