/**
 * Reads the tokens an upstream answer reports while the answer passes through: a whole JSON body,
 * or server-sent events fed chunk by chunk (OpenAI's final `usage` chunk; Anthropic's
 * `message_start` and `message_delta`).
 */
import { usageFromAnthropic, usageFromOpenAI, type TokenUsage } from "../../clients/ts/src";

export type Api = "openai" | "anthropic";

/** An SSE event larger than this is skipped rather than buffered further. */
const MAX_EVENT_CHARS = 1024 * 1024;

export function usageOfBody(api: Api, text: string): TokenUsage | undefined {
  try {
    const usage = (JSON.parse(text) as { usage?: unknown }).usage;
    return api === "openai" ? usageFromOpenAI(usage) : usageFromAnthropic(usage);
  } catch {
    return undefined;
  }
}

export class StreamUsageReader {
  private pending = "";
  private skipping = false;
  private input = 0;
  private output = 0;
  private seen = false;
  private readonly decoder = new TextDecoder();

  constructor(private readonly api: Api) {}

  push(chunk: Uint8Array): void {
    let text = this.decoder.decode(chunk, { stream: true });
    // A CRLF may be cut between two chunks: its CR waits for the next one.
    if (this.pending.endsWith("\r")) {
      this.pending = this.pending.slice(0, -1);
      text = "\r" + text;
    }
    this.pending += text.replace(/\r\n/g, "\n");
    let end: number;
    while ((end = this.pending.indexOf("\n\n")) >= 0) {
      const event = this.pending.slice(0, end);
      this.pending = this.pending.slice(end + 2);
      if (this.skipping) this.skipping = false;
      else this.read(event);
    }
    if (this.pending.length > MAX_EVENT_CHARS) {
      this.pending = "";
      this.skipping = true;
    }
  }

  usage(): TokenUsage | undefined {
    return this.seen ? { inputTokens: this.input, outputTokens: this.output } : undefined;
  }

  private read(event: string): void {
    const data = event
      .split("\n")
      .filter((line) => line.startsWith("data:"))
      .map((line) => line.slice(5).trimStart())
      .join("\n");
    if (!data || data === "[DONE]") return;
    let message: Record<string, unknown>;
    try {
      message = JSON.parse(data) as Record<string, unknown>;
    } catch {
      return;
    }
    if (this.api === "openai") {
      const usage = usageFromOpenAI(message.usage);
      if (usage) this.set(usage.inputTokens, usage.outputTokens);
    } else if (message.type === "message_start") {
      const usage = usageFromAnthropic((message.message as { usage?: unknown } | undefined)?.usage);
      if (usage) this.set(usage.inputTokens, usage.outputTokens);
    } else if (message.type === "message_delta") {
      // message_delta's counts are cumulative; input counts appear there only sometimes.
      const delta = (message.usage ?? {}) as Record<string, unknown>;
      const usage = usageFromAnthropic({ input_tokens: 0, ...delta });
      if (usage) this.set(typeof delta.input_tokens === "number" ? usage.inputTokens : this.input, usage.outputTokens);
    }
  }

  private set(input: number, output: number): void {
    this.input = input;
    this.output = output;
    this.seen = true;
  }
}
