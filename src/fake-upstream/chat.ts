/**
 * The chat endpoints of the fake upstream: OpenAI `POST /v1/chat/completions` and Anthropic
 * `POST /v1/messages`, each with and without streaming (server-sent events), for the client
 * helpers' tests, the reference proxy's end-to-end test and its benchmark.
 *
 * Each key follows a plan: what its n-th request gets (ok, a 429 with rate-limit headers, a 401,
 * a 5xx). The fake counts, per key, the requests it answered and the tokens it billed (only a 200
 * bills tokens), and the window from each request's arrival to its response headers, so that a
 * test can compare keypool's usage with the upstream's own and see whether one key was used twice
 * at once.
 *
 * Handlers take a `ChatCall` and answer a `ChatAnswer` (a status, headers, and a JSON body or a
 * stream of SSE text chunks); `chat-server.ts` serves them over HTTP.
 */

export type ChatOutcome = "ok" | "rate-limited" | "revoked" | "overloaded";

/** What a key's n-th request (1-based) gets. */
export type ChatPlan = (nth: number) => ChatOutcome;

/** A plan: every `period`-th request is rate limited, the others succeed. */
export const rateLimitedEvery =
  (period: number): ChatPlan =>
  (nth) =>
    nth % period === 0 ? "rate-limited" : "ok";

export interface ChatCall {
  provider: "openai" | "anthropic";
  /** The secret the request carried ("" when none). */
  key: string;
  /** The body parsed as JSON (undefined when absent or not JSON). */
  body: unknown;
}

export interface ChatAnswer {
  status: number;
  headers: Record<string, string>;
  /** A JSON body, or `stream`: SSE text written chunk by chunk. */
  body?: unknown;
  stream?: AsyncIterable<string>;
}

export interface KeyCounts {
  requests: number;
  ok: number;
  rateLimited: number;
  revoked: number;
  overloaded: number;
  inputTokens: number;
  outputTokens: number;
  /** Per request: when it arrived and when its status and headers were decided (ms). */
  windows: { arrivedAt: number; answeredAt: number }[];
}

export interface FakeChatOptions {
  /** A key without a plan of its own; default: every request succeeds. */
  defaultPlan?: ChatPlan;
  /** How long each request takes before its headers (ms). Default 0. */
  latencyMs?: number;
  /** Awaited between two streamed chunks; default: the next turn of the event loop. */
  betweenChunks?: () => Promise<void>;
  /** Rate-limit cooldown the 429s ask for (ms). Default 250. */
  retryAfterMs?: number;
}

const ANSWER_WORDS = ["Keys", "are", "leased,", "reported", "and", "returned", "to", "the", "pool."];
const MAX_WINDOWS_PER_KEY = 10_000;

export class FakeChat {
  private readonly plans = new Map<string, ChatPlan>();
  private readonly counts = new Map<string, KeyCounts>();
  private readonly defaultPlan: ChatPlan;
  /** How long each request takes before its headers (ms); may change at any time. */
  latencyMs: number;
  private readonly betweenChunks: () => Promise<void>;
  /** The cooldown the 429s ask for (ms); may change at any time. */
  retryAfterMs: number;

  constructor(options: FakeChatOptions = {}) {
    this.defaultPlan = options.defaultPlan ?? (() => "ok");
    this.latencyMs = options.latencyMs ?? 0;
    this.betweenChunks = options.betweenChunks ?? (() => new Promise((resolve) => setImmediate(resolve)));
    this.retryAfterMs = options.retryAfterMs ?? 250;
  }

  setPlan(key: string, plan: ChatPlan): void {
    this.plans.set(key, plan);
  }

  /** The counts of every key that made a request. */
  countsByKey(): ReadonlyMap<string, Readonly<KeyCounts>> {
    return this.counts;
  }

  reset(): void {
    this.counts.clear();
  }

  readonly openAiChat = (call: ChatCall): Promise<ChatAnswer> => this.answer(call, "openai");
  readonly anthropicMessages = (call: ChatCall): Promise<ChatAnswer> => this.answer(call, "anthropic");

  private async answer(call: ChatCall, api: "openai" | "anthropic"): Promise<ChatAnswer> {
    const arrivedAt = performance.now();
    const counts = this.countsOf(call.key);
    counts.requests++;
    const outcome = (this.plans.get(call.key) ?? this.defaultPlan)(counts.requests);
    if (this.latencyMs > 0) await new Promise((resolve) => setTimeout(resolve, this.latencyMs));
    if (counts.windows.length < MAX_WINDOWS_PER_KEY) counts.windows.push({ arrivedAt, answeredAt: performance.now() });

    const request = parseChatRequest(call.body);
    if (!request) {
      return api === "openai"
        ? { status: 400, headers: {}, body: openAiError("messages and model are required", "invalid_request_error") }
        : { status: 400, headers: {}, body: anthropicError("invalid_request_error", "messages and model are required") };
    }
    if (request.maxTokens !== undefined && request.maxTokens < 1) {
      // What the key checker's liveness probe relies on: a working key gets a 400, not a completion.
      return api === "openai"
        ? { status: 400, headers: openAiLimits(9_999, "6ms"), body: openAiError("Invalid 'max_tokens': integer below minimum value.", "invalid_request_error", "integer_below_min_value") }
        : { status: 400, headers: {}, body: anthropicError("invalid_request_error", "max_tokens: must be at least 1") };
    }
    switch (outcome) {
      case "rate-limited":
        counts.rateLimited++;
        return api === "openai"
          ? {
              status: 429,
              headers: openAiLimits(0, `${this.retryAfterMs}ms`),
              body: openAiError("Rate limit reached for requests.", "requests", "rate_limit_exceeded"),
            }
          : {
              status: 429,
              headers: { ...anthropicLimits(0, this.retryAfterMs), "retry-after-ms": String(this.retryAfterMs) },
              body: anthropicError("rate_limit_error", "Number of requests has exceeded your rate limit."),
            };
      case "revoked":
        counts.revoked++;
        return api === "openai"
          ? { status: 401, headers: {}, body: openAiError("Incorrect API key provided.", "invalid_request_error", "invalid_api_key") }
          : { status: 401, headers: {}, body: anthropicError("authentication_error", "invalid x-api-key") };
      case "overloaded":
        counts.overloaded++;
        return api === "openai"
          ? { status: 503, headers: {}, body: openAiError("The server is overloaded or not ready yet.", "server_error") }
          : { status: 529, headers: {}, body: anthropicError("overloaded_error", "Overloaded") };
      case "ok": {
        counts.ok++;
        const inputTokens = countInputTokens(request.messages);
        const words = ANSWER_WORDS.slice(0, Math.min(request.maxTokens ?? Infinity, 3 + (inputTokens % (ANSWER_WORDS.length - 2))));
        counts.inputTokens += inputTokens;
        counts.outputTokens += words.length;
        const usage = { inputTokens, outputTokens: words.length };
        if (api === "openai") {
          const headers = openAiLimits(9_000 + (counts.requests % 1000), "6ms");
          if (!request.stream) return { status: 200, headers, body: openAiCompletion(request.model, words, usage) };
          return { status: 200, headers: sse(headers), stream: this.paced(openAiStream(request.model, words, usage, request.includeUsage)) };
        }
        const headers = anthropicLimits(900 + (counts.requests % 100), 0);
        if (!request.stream) return { status: 200, headers, body: anthropicMessage(request.model, words, usage) };
        return { status: 200, headers: sse(headers), stream: this.paced(anthropicStream(request.model, words, usage)) };
      }
    }
  }

  private countsOf(key: string): KeyCounts {
    let counts = this.counts.get(key);
    if (!counts) {
      counts = { requests: 0, ok: 0, rateLimited: 0, revoked: 0, overloaded: 0, inputTokens: 0, outputTokens: 0, windows: [] };
      this.counts.set(key, counts);
    }
    return counts;
  }

  private async *paced(chunks: Iterable<string>): AsyncIterable<string> {
    let first = true;
    for (const chunk of chunks) {
      if (!first) await this.betweenChunks();
      first = false;
      yield chunk;
    }
  }
}

interface ChatRequest {
  model: string;
  /** max_tokens (or OpenAI's max_completion_tokens): the answer has at most this many tokens. */
  maxTokens: number | undefined;
  messages: unknown[];
  stream: boolean;
  includeUsage: boolean;
}

function parseChatRequest(body: unknown): ChatRequest | undefined {
  if (typeof body !== "object" || body === null) return undefined;
  const { model, messages, stream, stream_options, max_tokens, max_completion_tokens } = body as Record<string, unknown>;
  if (typeof model !== "string" || !Array.isArray(messages)) return undefined;
  const includeUsage = (stream_options as { include_usage?: unknown } | undefined)?.include_usage === true;
  const limit = max_tokens ?? max_completion_tokens;
  return { model, messages, stream: stream === true, includeUsage, maxTokens: typeof limit === "number" ? limit : undefined };
}

/** About one token per four characters of message text, at least one per message. */
function countInputTokens(messages: unknown[]): number {
  let tokens = 0;
  for (const message of messages) {
    const content = (message as { content?: unknown } | null)?.content;
    const text = typeof content === "string" ? content : JSON.stringify(content ?? "");
    tokens += 1 + Math.ceil(text.length / 4);
  }
  return tokens;
}

interface Usage {
  inputTokens: number;
  outputTokens: number;
}

const sse = (headers: Record<string, string>) => ({ ...headers, "content-type": "text/event-stream", "cache-control": "no-cache" });

// ------------------------------------------------------------------ OpenAI

const openAiError = (message: string, type: string, code: string | null = null) => ({
  error: { message, type, param: null, code },
});

function openAiLimits(remainingRequests: number, reset: string): Record<string, string> {
  return {
    "x-ratelimit-limit-requests": "10000",
    "x-ratelimit-remaining-requests": String(remainingRequests),
    "x-ratelimit-reset-requests": reset,
    "x-ratelimit-limit-tokens": "2000000",
    "x-ratelimit-remaining-tokens": remainingRequests === 0 ? "1999000" : "1990000",
    "x-ratelimit-reset-tokens": "1ms",
  };
}

function openAiCompletion(model: string, words: string[], usage: Usage) {
  return {
    id: "chatcmpl-fake",
    object: "chat.completion",
    created: 1_700_000_000,
    model,
    choices: [{ index: 0, message: { role: "assistant", content: words.join(" "), refusal: null }, finish_reason: "stop", logprobs: null }],
    usage: { prompt_tokens: usage.inputTokens, completion_tokens: usage.outputTokens, total_tokens: usage.inputTokens + usage.outputTokens },
  };
}

function* openAiStream(model: string, words: string[], usage: Usage, includeUsage: boolean): Iterable<string> {
  const chunk = (choices: unknown[], extra: object = {}) =>
    `data: ${JSON.stringify({ id: "chatcmpl-fake", object: "chat.completion.chunk", created: 1_700_000_000, model, choices, ...extra })}\n\n`;
  yield chunk([{ index: 0, delta: { role: "assistant", content: "" }, finish_reason: null }]);
  for (let i = 0; i < words.length; i++) {
    yield chunk([{ index: 0, delta: { content: (i ? " " : "") + words[i] }, finish_reason: null }]);
  }
  yield chunk([{ index: 0, delta: {}, finish_reason: "stop" }]);
  if (includeUsage) {
    yield chunk([], {
      usage: { prompt_tokens: usage.inputTokens, completion_tokens: usage.outputTokens, total_tokens: usage.inputTokens + usage.outputTokens },
    });
  }
  yield "data: [DONE]\n\n";
}

// ------------------------------------------------------------------ Anthropic

const anthropicError = (type: string, message: string) => ({ type: "error", error: { type, message } });

function anthropicLimits(remainingRequests: number, resetInMs: number): Record<string, string> {
  const reset = new Date(Date.now() + resetInMs).toISOString();
  return {
    "anthropic-ratelimit-requests-limit": "1000",
    "anthropic-ratelimit-requests-remaining": String(remainingRequests),
    "anthropic-ratelimit-requests-reset": reset,
  };
}

function anthropicMessage(model: string, words: string[], usage: Usage) {
  return {
    id: "msg_fake",
    type: "message",
    role: "assistant",
    model,
    content: [{ type: "text", text: words.join(" ") }],
    stop_reason: "end_turn",
    stop_sequence: null,
    usage: { input_tokens: usage.inputTokens, output_tokens: usage.outputTokens },
  };
}

function* anthropicStream(model: string, words: string[], usage: Usage): Iterable<string> {
  const event = (type: string, data: object) => `event: ${type}\ndata: ${JSON.stringify({ type, ...data })}\n\n`;
  yield event("message_start", {
    message: { ...anthropicMessage(model, [], usage), content: [], stop_reason: null, usage: { input_tokens: usage.inputTokens, output_tokens: 1 } },
  });
  yield event("content_block_start", { index: 0, content_block: { type: "text", text: "" } });
  for (let i = 0; i < words.length; i++) {
    yield event("content_block_delta", { index: 0, delta: { type: "text_delta", text: (i ? " " : "") + words[i] } });
  }
  yield event("content_block_stop", { index: 0 });
  yield event("message_delta", { delta: { stop_reason: "end_turn", stop_sequence: null }, usage: { output_tokens: usage.outputTokens } });
  yield event("message_stop", {});
}
