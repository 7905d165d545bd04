/**
 * The reference proxy reads token counts from streamed answers as they pass: whatever the chunk
 * boundaries (mid-event, mid-line, mid-character), the counts are the upstream's.
 */
import { StreamUsageReader, usageOfBody } from "../../../examples/proxy/usage-reader";

const encoder = new TextEncoder();

/** Feeds `text` in pieces cut at every `step` bytes. */
function readInPieces(api: "openai" | "anthropic", text: string, step: number) {
  const reader = new StreamUsageReader(api);
  const bytes = encoder.encode(text);
  for (let i = 0; i < bytes.length; i += step) reader.push(bytes.subarray(i, i + step));
  return reader.usage();
}

const openAiStream =
  'data: {"choices":[{"delta":{"content":"Ünïcödé ✓"}}]}\n\n' +
  'data: {"choices":[{"delta":{},"finish_reason":"stop"}]}\n\n' +
  'data: {"choices":[],"usage":{"prompt_tokens":12,"completion_tokens":7,"total_tokens":19}}\n\n' +
  "data: [DONE]\n\n";

const anthropicStream =
  'event: message_start\ndata: {"type":"message_start","message":{"usage":{"input_tokens":20,"cache_read_input_tokens":5,"output_tokens":1}}}\n\n' +
  'event: content_block_delta\ndata: {"type":"content_block_delta","delta":{"type":"text_delta","text":"✓"}}\n\n' +
  'event: message_delta\ndata: {"type":"message_delta","usage":{"output_tokens":9}}\n\n' +
  'event: message_stop\ndata: {"type":"message_stop"}\n\n';

describe("StreamUsageReader", () => {
  it.each([1, 2, 3, 7, 64, 10_000])("reads OpenAI's final usage chunk with pieces of %i bytes", (step) => {
    expect(readInPieces("openai", openAiStream, step)).toEqual({ inputTokens: 12, outputTokens: 7 });
  });

  it.each([1, 5, 13, 10_000])("reads Anthropic's message_start and cumulative message_delta with pieces of %i bytes", (step) => {
    // Cache reads are billed as input.
    expect(readInPieces("anthropic", anthropicStream, step)).toEqual({ inputTokens: 25, outputTokens: 9 });
  });

  it("takes CRLF line ends, and says nothing when the stream carried no usage", () => {
    for (const step of [1, 2, 3, 5]) {
      expect(readInPieces("openai", openAiStream.replace(/\n/g, "\r\n"), step)).toEqual({ inputTokens: 12, outputTokens: 7 });
    }
    expect(readInPieces("openai", 'data: {"choices":[]}\n\ndata: [DONE]\n\n', 4)).toBeUndefined();
  });

  it("skips an event over its size bound instead of buffering it, and reads the ones after", () => {
    const huge = `data: {"pad":"${"x".repeat(1_100_000)}"}\n\n`;
    expect(readInPieces("openai", huge + openAiStream, 65_536)).toEqual({ inputTokens: 12, outputTokens: 7 });
  });
});

describe("usageOfBody", () => {
  it("reads a whole answer's usage, and nothing from a body that is not JSON", () => {
    expect(usageOfBody("openai", '{"usage":{"prompt_tokens":3,"completion_tokens":4}}')).toEqual({ inputTokens: 3, outputTokens: 4 });
    expect(usageOfBody("anthropic", '{"usage":{"input_tokens":3,"output_tokens":4}}')).toEqual({ inputTokens: 3, outputTokens: 4 });
    expect(usageOfBody("openai", "<html>")).toBeUndefined();
  });
});
