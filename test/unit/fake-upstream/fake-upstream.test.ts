/**
 * The one fake upstream serves the checker's keys and the chat keys side by side: which key gets
 * which answers, streaming through its HTTP server, and handlers that answer later.
 */
import { FakeChat, rateLimitedEvery } from "../../../src/fake-upstream/chat";
import { FakeUpstream } from "../../../src/fake-upstream/fake-upstream";

const CHAT = { model: "gpt-4o-mini", messages: [{ role: "user", content: "How are keys shared?" }] };

let fake: FakeUpstream | undefined;
afterEach(async () => {
  await fake?.close();
  fake = undefined;
});

const openAiChat = (key: string, body: object = CHAT) =>
  fetch(`${fake!.url}/v1/chat/completions`, {
    method: "POST",
    headers: { authorization: `Bearer ${key}`, "content-type": "application/json" },
    body: JSON.stringify(body),
  });

test("a key the fake does not know is rejected with 401 unless unknown keys are chat keys", async () => {
  fake = await FakeUpstream.start();
  const refused = await openAiChat("sk-test-openai-0001");
  expect(refused.status).toBe(401);
  expect(fake.chat.countsByKey().size).toBe(0);
  await fake.close();

  fake = await FakeUpstream.start({ chatForUnknownKeys: true });
  const answered = await openAiChat("sk-test-openai-0001");
  expect(answered.status).toBe(200);
  const body = (await answered.json()) as { object: string; usage: { prompt_tokens: number } };
  expect(body.object).toBe("chat.completion");
  expect(fake.chat.countsByKey().get("sk-test-openai-0001")).toMatchObject({ requests: 1, ok: 1, inputTokens: body.usage.prompt_tokens });
  // The checker's endpoints still reject it: it is no key a check can find alive.
  const models = await fetch(`${fake.url}/v1/models`, { headers: { authorization: "Bearer sk-test-openai-0001" } });
  expect(models.status).toBe(401);
});

test("a chat plan wins over a key's check behaviour on the chat endpoints only", async () => {
  const chat = new FakeChat();
  fake = await FakeUpstream.start({ chat });
  const key = "sk-fake-revoked-1";
  expect((await openAiChat(key)).status).toBe(401);
  chat.setPlan(key, rateLimitedEvery(2));
  expect((await openAiChat(key)).status).toBe(200);
  const limited = await openAiChat(key);
  expect(limited.status).toBe(429);
  expect(limited.headers.get("x-ratelimit-remaining-requests")).toBe("0");
  expect(chat.countsByKey().get(key)).toMatchObject({ requests: 2, ok: 1, rateLimited: 1 });
  const models = await fetch(`${fake.url}/v1/models`, { headers: { authorization: `Bearer ${key}` } });
  expect(models.status).toBe(401);
  // A "refused" key with a chat plan is answered on the chat endpoints, not hung up on.
  chat.setPlan("sk-fake-refused-1", () => "ok");
  expect((await openAiChat("sk-fake-refused-1")).status).toBe(200);
});

test("streamed chats arrive as server-sent events through the fake's server", async () => {
  fake = await FakeUpstream.start({ chatForUnknownKeys: true });
  const res = await fetch(`${fake.url}/v1/messages`, {
    method: "POST",
    headers: { "x-api-key": "sk-ant-test-0001", "content-type": "application/json" },
    body: JSON.stringify({ ...CHAT, model: "claude-3-5-haiku-20241022", max_tokens: 64, stream: true }),
  });
  expect(res.status).toBe(200);
  expect(res.headers.get("content-type")).toBe("text/event-stream");
  const events = [...(await res.text()).matchAll(/^event: (\S+)$/gm)].map((m) => m[1]);
  expect(events[0]).toBe("message_start");
  expect(events).toContain("content_block_delta");
  expect(events.at(-1)).toBe("message_stop");
  expect(fake.chat.countsByKey().get("sk-ant-test-0001")).toMatchObject({ requests: 1, ok: 1 });
});

test("a route may answer later", async () => {
  fake = await FakeUpstream.start();
  fake.route("GET", "/v1/later", async (call) => {
    await new Promise((resolve) => setImmediate(resolve));
    return { status: 200, body: { key: call.key.length } };
  });
  const res = await fetch(`${fake.url}/v1/later`, { headers: { authorization: "Bearer sk-fake-working-1" } });
  expect(res.status).toBe(200);
  expect(await res.json()).toEqual({ key: "sk-fake-working-1".length });
});
