/**
 * Reads the status and headers of what a caller's function got from the upstream, whatever its
 * shape: a `fetch` Response, the `{ data, response }` of the OpenAI and Anthropic SDKs'
 * `.withResponse()`, their `.asResponse()` Response, or a thrown SDK `APIError` (which carries
 * `status` and `headers`).
 */

/** Header shapes the helper reads: a WHATWG `Headers`, a plain record, or `[name, value]` pairs. */
export type HeadersLike =
  | { forEach(callback: (value: string, name: string) => void): void }
  | Record<string, string | string[] | number | undefined | null>
  | Iterable<readonly [string, string]>;

/** Anything with an HTTP status and the response headers. */
export interface ResponseLike {
  status: number;
  headers: HeadersLike;
}

/** keypool accepts at most 64 headers, each value at most 8 KiB (docs/reports-and-lockout.md). */
const MAX_HEADERS = 64;
const MAX_VALUE_BYTES = 8192;

/**
 * The headers as a lower-case record for ReportRateLimit. Rate-limit headers (the ones keypool
 * reads) go first so that they survive the 64-header limit; oversized values are left out.
 */
export function headersRecord(headers: HeadersLike | undefined): Record<string, string> {
  const all: [string, string][] = [];
  const add = (name: string, value: unknown) => {
    if (value === undefined || value === null) return;
    const text = Array.isArray(value) ? value.join(", ") : String(value);
    if (Buffer.byteLength(text) <= MAX_VALUE_BYTES) all.push([name.toLowerCase(), text]);
  };
  if (!headers) return {};
  if (typeof (headers as { forEach?: unknown }).forEach === "function" && !Array.isArray(headers)) {
    (headers as { forEach(cb: (value: string, name: string) => void): void }).forEach((value, name) => add(name, value));
  } else if (typeof (headers as Iterable<unknown>)[Symbol.iterator] === "function") {
    for (const [name, value] of headers as Iterable<readonly [string, string]>) add(name, value);
  } else {
    for (const [name, value] of Object.entries(headers)) add(name, value);
  }
  const rateLimit = all.filter(([name]) => isRateLimitHeader(name));
  const others = all.filter(([name]) => !isRateLimitHeader(name));
  return Object.fromEntries([...rateLimit, ...others].slice(0, MAX_HEADERS));
}

function isRateLimitHeader(name: string): boolean {
  return name.startsWith("x-ratelimit-") || name.startsWith("anthropic-ratelimit-") || name.startsWith("retry-after");
}

/**
 * The status and headers of a value, or undefined when it has none: a Response-like object, or
 * an object whose `response` is one (the SDKs' `withResponse()` result).
 */
export function responseMeta(value: unknown): ResponseLike | undefined {
  if (isResponseLike(value)) return value;
  const inner = (value as { response?: unknown } | null | undefined)?.response;
  return isResponseLike(inner) ? inner : undefined;
}

function isResponseLike(value: unknown): value is ResponseLike {
  if (typeof value !== "object" || value === null) return false;
  const { status, headers } = value as { status?: unknown; headers?: unknown };
  return typeof status === "number" && Number.isInteger(status) && status >= 100 && status <= 599 && typeof headers === "object" && headers !== null;
}
