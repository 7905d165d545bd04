/**
 * Token counts as the upstreams report them, turned into what IncrementUsage takes.
 */

export interface TokenUsage {
  inputTokens: number;
  outputTokens: number;
}

/** OpenAI's `usage` (chat completions: prompt/completion tokens; responses API: input/output). */
export function usageFromOpenAI(usage: unknown): TokenUsage | undefined {
  if (typeof usage !== "object" || usage === null) return undefined;
  const u = usage as Record<string, unknown>;
  const input = u.prompt_tokens ?? u.input_tokens;
  const output = u.completion_tokens ?? u.output_tokens;
  if (typeof input !== "number" && typeof output !== "number") return undefined;
  return { inputTokens: toCount(input), outputTokens: toCount(output) };
}

/**
 * Anthropic's `usage`: input tokens include the cache reads and writes, which the upstream bills
 * as input too.
 */
export function usageFromAnthropic(usage: unknown): TokenUsage | undefined {
  if (typeof usage !== "object" || usage === null) return undefined;
  const u = usage as Record<string, unknown>;
  if (typeof u.input_tokens !== "number" && typeof u.output_tokens !== "number") return undefined;
  return {
    inputTokens: toCount(u.input_tokens) + toCount(u.cache_creation_input_tokens) + toCount(u.cache_read_input_tokens),
    outputTokens: toCount(u.output_tokens),
  };
}

function toCount(value: unknown): number {
  return typeof value === "number" && Number.isFinite(value) && value > 0 ? Math.floor(value) : 0;
}
