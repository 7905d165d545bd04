/**
 * Go's time.Duration text ("20ms", "1s", "6m0s", "1h2m3.5s", "0.5s"), as OpenAI sends it in
 * x-ratelimit-reset-*. The original proxy's regex read "6m0s" as zero; this parses every unit.
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

/** Milliseconds, or undefined when the text is not a non-negative Go duration. */
export function parseGoDuration(text: string): number | undefined {
  const value = text.trim();
  if (value === "0") return 0;
  if (value.length === 0 || value.length > 64 || !WHOLE.test(value)) return undefined;
  let total = 0;
  for (const [, number, unit] of value.matchAll(PART)) total += Number(number) * UNIT_MS[unit];
  return Number.isFinite(total) ? total : undefined;
}
