/**
 * The fake chat upstream's answers and counts: the tests that compare keypool's usage with the
 * upstream's rely on these being the upstream's own truth.
 */
import { FakeChat, rateLimitedEvery, type ChatAnswer } from "../../../src/fake-upstream/chat";

const body = (extra: object = {}) => ({ model: "gpt-4o-mini", messages: [{ role: "user", content: "How are keys shared?" }], ...extra });

async function text(answer: ChatAnswer): Promise<string> {
  let all = "";
  for await (const chunk of answer.stream!) all += chunk;
  return all;
}

describe("FakeChat", () => {
  it("follows each key's plan by request number, and bills tokens only for a 200", async () => {
    const chat = new FakeChat();
    chat.setPlan("k1", rateLimitedEvery(2));
    const first = await chat.openAiChat({ provider: "openai", key: "k1", body: body() });
    const second = await chat.openAiChat({ provider: "openai", key: "k1", body: body() });
    expect(first.status).toBe(200);
    expect(second.status).toBe(429);
    expect(second.headers).toMatchObject({ "x-ratelimit-remaining-requests": "0", "x-ratelimit-reset-requests": "250ms" });
    const usage = (first.body as { usage: { prompt_tokens: number; completion_tokens: number } }).usage;
    expect(chat.countsByKey().get("k1")).toMatchObject({
      requests: 2,
      ok: 1,
      rateLimited: 1,
      inputTokens: usage.prompt_tokens,
      outputTokens: usage.completion_tokens,
    });
  });

  it("answers 401 and 5xx without billing, in each provider's error shape", async () => {
    const chat = new FakeChat({ defaultPlan: (n) => (n === 1 ? "revoked" : "overloaded") });
    const revoked = await chat.anthropicMessages({ provider: "anthropic", key: "a", body: body() });
    const overloaded = await chat.anthropicMessages({ provider: "anthropic", key: "a", body: body() });
    expect(revoked).toMatchObject({ status: 401, body: { type: "error", error: { type: "authentication_error" } } });
    expect(overloaded.status).toBe(529);
    expect(chat.countsByKey().get("a")).toMatchObject({ requests: 2, revoked: 1, overloaded: 1, inputTokens: 0, outputTokens: 0 });
  });

  it("streams OpenAI chunks with the usage chunk when asked, and counts the same tokens", async () => {
    const chat = new FakeChat();
    const answer = await chat.openAiChat({ provider: "openai", key: "k", body: body({ stream: true, stream_options: { include_usage: true } }) });
    expect(answer.headers["content-type"]).toBe("text/event-stream");
    const events = (await text(answer)).trim().split("\n\n");
    expect(events.at(-1)).toBe("data: [DONE]");
    const usage = (JSON.parse(events.at(-2)!.slice(6)) as { usage: { prompt_tokens: number; completion_tokens: number } }).usage;
    const counts = chat.countsByKey().get("k")!;
    expect({ input: usage.prompt_tokens, output: usage.completion_tokens }).toEqual({ input: counts.inputTokens, output: counts.outputTokens });
  });

  it("refuses max_tokens below 1 with OpenAI's 400 (the key checker's liveness probe) and caps answers at max_tokens", async () => {
    const chat = new FakeChat();
    const probe = await chat.openAiChat({ provider: "openai", key: "k", body: body({ max_tokens: -1 }) });
    expect(probe).toMatchObject({ status: 400, body: { error: { code: "integer_below_min_value" } } });
    const one = await chat.anthropicMessages({ provider: "anthropic", key: "a", body: body({ max_tokens: 1 }) });
    expect(one.body).toMatchObject({ usage: { output_tokens: 1 } });
  });

  it("answers 400 to a body without model or messages", async () => {
    const chat = new FakeChat();
    expect((await chat.openAiChat({ provider: "openai", key: "k", body: undefined })).status).toBe(400);
    expect((await chat.anthropicMessages({ provider: "anthropic", key: "k", body: { model: "x" } })).status).toBe(400);
  });
});
