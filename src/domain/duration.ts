/**
 * The one duration grammar: Go's time.Duration text ("20ms", "1s", "6m0s", "1h2m3.5s", "0.5s"),
 * which OpenAI sends in x-ratelimit-reset-* and operators write in settings. Settings also take a
 * bare number as milliseconds ("1500"); upstream headers do not.
 */
const UNIT_MS: Record<string, number> = {
  ns: 1e-6,
  us: 1e-3,
  "µs": 1e-3,
  "μs": 1e-3,
  ms: 1,
  s: 1000,
  m: 60_000,
  h: 3_600_000,
};

const WHOLE = /^(?:(?:\d+(?:\.\d*)?|\.\d+)(?:ns|us|µs|μs|ms|s|m|h))+$/;
const PART = /(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|μs|ms|s|m|h)/g;

/** A non-negative decimal number without exponent or sign, as headers and settings write counts. */
export const DECIMAL = /^\d+(?:\.\d+)?$/;

/** Milliseconds, or undefined when the text is not a non-negative Go duration. */
export function parseGoDuration(text: string): number | undefined {
  const value = text.trim();
  if (value === "0") return 0;
  if (value.length === 0 || value.length > 64 || !WHOLE.test(value)) return undefined;
  let total = 0;
  for (const [, number, unit] of value.matchAll(PART)) total += Number(number) * UNIT_MS[unit];
  return Number.isFinite(total) ? total : undefined;
}

/** A setting's duration: a bare number of milliseconds, or a Go duration; whole milliseconds. */
export function parseDurationMs(text: string): number | undefined {
  const value = text.trim();
  if (DECIMAL.test(value)) return Math.round(Number(value));
  const ms = parseGoDuration(value);
  return ms === undefined ? undefined : Math.round(ms);
}

/** Milliseconds in the largest unit that writes them whole ("10m", "1s", "100ms"). */
export function formatDurationMs(ms: number): string {
  for (const [unit, size] of [["h", 3_600_000], ["m", 60_000], ["s", 1000]] as const) {
    if (ms > 0 && ms % size === 0) return `${ms / size}${unit}`;
  }
  return `${ms}ms`;
}
