/**
 * The waits an upstream states in headers: `retry-after` (seconds or an HTTP date),
 * `retry-after-ms`, and RFC 3339 instants (Anthropic's reset headers). Every parser returns
 * milliseconds from `now`, never negative, or undefined when the value does not parse: a bad
 * header is ignored, never an error.
 */
import { DECIMAL } from "./duration";

// IMF-fixdate ("Sun, 06 Nov 1994 08:49:37 GMT"), RFC 850, and asctime (which is GMT without
// saying so, hence the suffix we add before parsing it).
const IMF_OR_RFC850 =
  /^(?:[A-Za-z]{3}, \d{2} [A-Za-z]{3} \d{4}|[A-Za-z]+, \d{2}-[A-Za-z]{3}-\d{2}) \d{2}:\d{2}:\d{2} GMT$/;
const ASCTIME = /^[A-Za-z]{3} [A-Za-z]{3} [ \d]\d \d{2}:\d{2}:\d{2} \d{4}$/;
const RFC3339 = /^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(?:\.\d+)?(?:[Zz]|[+-]\d{2}:\d{2})$/;

/** `retry-after`: delay-seconds or an HTTP date. */
export function parseRetryAfter(value: string, now: number): number | undefined {
  const text = value.trim();
  if (DECIMAL.test(text)) return Number(text) * 1000;
  let at = NaN;
  if (IMF_OR_RFC850.test(text)) at = Date.parse(text);
  else if (ASCTIME.test(text)) at = Date.parse(`${text} GMT`);
  return Number.isFinite(at) ? Math.max(0, at - now) : undefined;
}

/** `retry-after-ms`: a non-negative number of milliseconds. */
export function parseRetryAfterMs(value: string): number | undefined {
  const text = value.trim();
  return DECIMAL.test(text) ? Number(text) : undefined;
}

/** An RFC 3339 instant, as the wait from `now` until then (0 when it has passed). */
export function parseRfc3339Wait(value: string, now: number): number | undefined {
  const text = value.trim();
  if (!RFC3339.test(text)) return undefined;
  const at = Date.parse(text.replace(" ", "T"));
  return Number.isFinite(at) ? Math.max(0, at - now) : undefined;
}
