/**
 * The TypeScript client helper (clients/ts) against a real keypool over real sockets and the fake
 * chat endpoints on loopback, calling the upstream with fetch and with the official OpenAI and
 * Anthropic SDKs.
 */
import Anthropic from "@anthropic-ai/sdk";
import OpenAI from "openai";
import { KeyPoolHelper, NoKeyError, usageFromAnthropic, usageFromOpenAI, type KeyPoolEvent } from "../../clients/ts/src";
import { KeyState } from "../../gen/ts/keypool/v1/keypool_pb";
import { rateLimitedEvery } from "../../src/fake-upstream/chat";
import { startKeypoolAndUpstream, type KeypoolAndUpstream } from "../support/keypool-and-upstream";
import { advanceUntilSettled, systemClock, testKey } from "../support/test-server";

const OPENAI = [1, 2, 3].map((n) => testKey("openai", n));
const ANTHROPIC = testKey("anthropic", 1);
const SECRETS = [...OPENAI, ANTHROPIC];
const KEYS = [...OPENAI.map((key) => ({ provider: "openai" as const, key })), { provider: "anthropic" as const, key: ANTHROPIC }];

let env: KeypoolAndUpstream;
let events: KeyPoolEvent[];
let helper: KeyPoolHelper;

async function setUp(options: Parameters<typeof startKeypoolAndUpstream>[1] = {}) {
  env = await startKeypoolAndUpstream(KEYS, options);
  events = [];
  helper = new KeyPoolHelper({ baseUrl: env.keypool.url, onEvent: (event) => events.push(event) });
}
afterEach(async () => {
  // No secret in any log line: the helper's events and keypool's own log.
  const lines = [...events.map((event) => JSON.stringify(event)), ...env.serverLog];
  expect(lines.length).toBeGreaterThan(0);
  for (const line of lines) for (const secret of SECRETS) expect(line).not.toContain(secret);
  await env.close();
});

const keys = async () => (await helper.client.listKeys({})).keys;
const keyOf = async (hash: string) => (await keys()).find((k) => k.keyHash === hash)!;
const leasedHashes = () => events.flatMap((e) => (e.type === "lease" ? [e.keyHash] : []));
const body = (model: string, text = "How are keys shared?") => JSON.stringify({ model, messages: [{ role: "user", content: text }] });

/** The caller's function of a fetch-based proxy: one OpenAI chat completion. */
const fetchChat = (model: string) => async (key: { key: string }, { signal }: { signal: AbortSignal }) => {
  const response = await fetch(`${env.upstream.url}/v1/chat/completions`, {
    method: "POST",
    headers: { authorization: `Bearer ${key.key}`, "content-type": "application/json" },
    body: body(model),
    signal,
  });
  const json = (await response.json()) as { usage?: unknown };
  return { response, usage: usageFromOpenAI(json.usage), value: json };
};

describe("TypeScript client helper", () => {
  it("moves to the next key after a 429, and the first key is cooling down in ListKeys", async () => {
    await setUp();
    let upstreamRequests = 0;
    for (const key of OPENAI) env.chat.setPlan(key, () => (++upstreamRequests === 1 ? "rate-limited" : "ok"));

    const result = await helper.withKey({ model: "gpt-4o-mini" }, fetchChat("gpt-4o-mini"));

    expect(result.status).toBe(200);
    expect(result.attempts).toBe(2);
    const [first, second] = leasedHashes();
    expect(second).not.toBe(first);
    expect(result.keyHash).toBe(second);
    const cooling = await keyOf(first);
    expect(cooling.rateLimitedAt).toBeDefined();
    // The fake's 429 asks for 250 ms (x-ratelimit-reset-requests with none remaining).
    const ms = (t: { seconds: bigint; nanos: number }) => Number(t.seconds) * 1000 + t.nanos / 1e6;
    expect(ms(cooling.rateLimitedAt!)).toBe(env.keypool.clock.now());
    expect(ms(cooling.readyAt!)).toBeGreaterThanOrEqual(env.keypool.clock.now() + 250);
    expect(cooling.state).toBe(KeyState.ACTIVE);
    for (const key of await keys()) expect(key.inFlight).toBe(0);
    expect(events.filter((e) => e.type === "retry")).toEqual([{ type: "retry", keyHash: first, status: 429, attempt: 1 }]);
  });

  it("a 401 revokes the key, and the call succeeds on another", async () => {
    await setUp();
    let upstreamRequests = 0;
    for (const key of OPENAI) env.chat.setPlan(key, () => (++upstreamRequests === 1 ? "revoked" : "ok"));

    const result = await helper.withKey({ model: "gpt-4o-mini" }, fetchChat("gpt-4o-mini"));

    expect(result.status).toBe(200);
    const [revoked] = leasedHashes();
    const status = await keyOf(revoked);
    expect(status.state).toBe(KeyState.REVOKED);
    expect(status.stateReason).toContain("401");
    expect(status.inFlight).toBe(0);
  });

  it("a function that throws still ends its lease: in_flight back to 0, and the error reaches the caller", async () => {
    await setUp();
    const boom = new Error("connection reset while sending");
    await expect(
      helper.withKey({ model: "gpt-4o-mini" }, async () => {
        throw boom;
      }),
    ).rejects.toBe(boom);

    const [hash] = leasedHashes();
    const status = await keyOf(hash);
    expect(status.leaseCount).toBe(1n);
    expect(status.inFlight).toBe(0);
    expect(leasedHashes()).toHaveLength(1);
  });

  it("usage lands on the model's family of the key that served it, with the lease id that ends the lease", async () => {
    await setUp();
    // gpt-4 is family gpt4; these keys serve turbo and gpt4.
    const result = await helper.withKey({ model: "gpt-4" }, fetchChat("gpt-4"));
    const served = await keyOf(result.keyHash);
    const counted = env.chat.countsByKey().get(OPENAI.find((k) => env.hashOf(k) === result.keyHash)!)!;

    expect(counted.inputTokens).toBeGreaterThan(0);
    expect(served.usage.gpt4).toMatchObject({ inputTokens: BigInt(counted.inputTokens), outputTokens: BigInt(counted.outputTokens), prompts: 1n });
    expect(served.usage.turbo).toBeUndefined();
    expect(served.inFlight).toBe(0);
    const lease = events.find((e) => e.type === "lease")!;
    const usage = events.find((e) => e.type === "usage")!;
    expect(usage).toMatchObject({ keyHash: result.keyHash, leaseId: lease.type === "lease" ? lease.leaseId : "" });
    for (const key of await keys()) if (key.keyHash !== result.keyHash) expect(key.promptCount).toBe(0n);
    // keypoolMs: the time spent in Lease, ReportRateLimit and IncrementUsage.
    const eventMs = events.reduce((sum, e) => sum + ("ms" in e ? e.ms : 0), 0);
    expect(result.keypoolMs).toBeCloseTo(eventMs, 6);
  });

  it("passes max_wait through: with every key held, the call waits for keypool instead of failing", async () => {
    await setUp();
    // Hold every OpenAI key (the 1 s reuse delay of keypool's manual clock).
    for (let i = 0; i < OPENAI.length; i++) await helper.client.lease({ model: "gpt-4o-mini" });

    const refused = await helper.withKey({ model: "gpt-4o-mini" }, fetchChat("gpt-4o-mini")).catch((e: unknown) => e);
    expect(refused).toBeInstanceOf(NoKeyError);
    expect((refused as NoKeyError).retryAfterMs).toBe(1000);

    const waited = helper.withKey({ model: "gpt-4o-mini", maxWaitMs: 5000 }, fetchChat("gpt-4o-mini"));
    const result = await advanceUntilSettled(env.keypool.manualClock!, waited, 250);
    expect(result.status).toBe(200);
    expect(env.keypool.clock.now()).toBeGreaterThanOrEqual(1000);
  });

  it("respects the caller's deadline across retries, and ends every lease it took", async () => {
    // A 429 cools its key down for 5 s: no key comes back before the deadline.
    await setUp({ chat: { latencyMs: 300, retryAfterMs: 5000 }, keypool: { clock: systemClock } });
    for (const key of OPENAI) env.chat.setPlan(key, rateLimitedEvery(1));
    await keys(); // the connection is open before the clock starts

    const started = Date.now();
    const outcome = await helper
      .withKey({ model: "gpt-4o-mini", timeoutMs: 1000, maxWaitMs: 10_000, attempts: 10 }, fetchChat("gpt-4o-mini"))
      .catch((e: unknown) => e);
    const elapsed = Date.now() - started;

    // Every answer is a 429 taking 300 ms, so ten attempts would take 3 s: the deadline ends the
    // call, either in the upstream call (its signal aborts) or while keypool is waiting for a
    // key (then the last 429 comes back, just before the deadline). The leases' ends run after
    // it, within reportTimeoutMs.
    if ("status" in (outcome as object)) expect(outcome).toMatchObject({ status: 429 });
    else expect((outcome as DOMException).name).toBe("TimeoutError");
    // keypool's own wait ends a tenth of the time left before the deadline (answerMargin).
    expect(elapsed).toBeGreaterThanOrEqual(880);
    expect(elapsed).toBeLessThan(1500);
    const leases = leasedHashes().length;
    expect(leases).toBeGreaterThanOrEqual(2);
    expect(leases).toBeLessThan(10);
    expect(events.filter((e) => e.type === "usage")).toHaveLength(leases);
    // Every lease the helper received is ended. A Lease granted as its deadline passed reaches a
    // client that has given up: that grant, never seen by the helper, is the only lease left in
    // flight (until its TTL).
    const all = await keys();
    const granted = all.reduce((n, k) => n + Number(k.leaseCount), 0);
    const inFlight = all.reduce((n, k) => n + k.inFlight, 0);
    expect(inFlight).toBe(granted - leases);
    expect(inFlight).toBeLessThanOrEqual(1);
  });

  it("returns the upstream's last answer when the attempts run out", async () => {
    await setUp();
    for (const key of OPENAI) env.chat.setPlan(key, rateLimitedEvery(1));
    const result = await helper.withKey({ model: "gpt-4o-mini", attempts: 2 }, fetchChat("gpt-4o-mini"));
    expect(result).toMatchObject({ status: 429, attempts: 2 });
    expect(new Set(leasedHashes()).size).toBe(2);
  });

  it("works with the OpenAI SDK: withResponse() for answers, its thrown RateLimitError for the 429", async () => {
    await setUp();
    let upstreamRequests = 0;
    for (const key of OPENAI) env.chat.setPlan(key, () => (++upstreamRequests === 1 ? "rate-limited" : "ok"));

    const result = await helper.withKey({ model: "gpt-4o-mini", provider: "openai" }, async (key, { signal }) => {
      // maxRetries 0: retrying is the helper's job, on another key.
      const openai = new OpenAI({ apiKey: key.key, baseURL: `${env.upstream.url}/v1`, maxRetries: 0 });
      const { data, response } = await openai.chat.completions
        .create({ model: "gpt-4o-mini", messages: [{ role: "user", content: "hello" }] }, { signal })
        .withResponse();
      return { response, usage: usageFromOpenAI(data.usage), value: data.choices[0].message.content };
    });

    expect(result.status).toBe(200);
    expect(result.value).toMatch(/^Keys are leased/);
    const [first, second] = leasedHashes();
    expect((await keyOf(first)).rateLimitedAt).toBeDefined();
    const served = await keyOf(second);
    expect(served.usage.turbo.inputTokens).toBeGreaterThan(0n);
    expect(served.inFlight).toBe(0);
  });

  it("works with the Anthropic SDK, and its thrown AuthenticationError revokes the key", async () => {
    const second = testKey("anthropic", 2);
    env = await startKeypoolAndUpstream([...KEYS, { provider: "anthropic", key: second }]);
    events = [];
    helper = new KeyPoolHelper({ baseUrl: env.keypool.url, onEvent: (event) => events.push(event) });
    let upstreamRequests = 0;
    for (const key of [ANTHROPIC, second]) env.chat.setPlan(key, () => (++upstreamRequests === 1 ? "revoked" : "ok"));

    const result = await helper.withKey({ model: "claude-3-5-haiku-20241022" }, async (key, { signal }) => {
      const anthropic = new Anthropic({ apiKey: key.key, baseURL: env.upstream.url, maxRetries: 0 });
      const { data, response } = await anthropic.messages
        .create({ model: "claude-3-5-haiku-20241022", max_tokens: 64, messages: [{ role: "user", content: "hello" }] }, { signal })
        .withResponse();
      return { response, usage: usageFromAnthropic(data.usage), value: data };
    });

    expect(result.status).toBe(200);
    const [revoked, served] = leasedHashes();
    expect((await keyOf(revoked)).state).toBe(KeyState.REVOKED);
    const usage = (await keyOf(served)).usage["claude-haiku"];
    expect(usage.inputTokens).toBe(BigInt(result.value.usage.input_tokens));
    expect(usage.outputTokens).toBe(BigInt(result.value.usage.output_tokens));
  });
});
