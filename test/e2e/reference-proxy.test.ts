/**
 * The reference proxy (examples/proxy) end to end: clients over HTTP on loopback, the proxy, a
 * real keypool over real sockets (real time), and the fake chat upstream with a mix of answers.
 */
import type { AddressInfo } from "node:net";
import type * as http from "node:http";
import { KeyPoolHelper, type KeyPoolEvent } from "../../clients/ts/src";
import { KeyState } from "../../gen/ts/keypool/v1/keypool_pb";
import { createProxy } from "../../examples/proxy/proxy";
import { rateLimitedEvery } from "../../src/fake-upstream/chat";
import { startKeypoolAndUpstream, type KeypoolAndUpstream } from "../support/keypool-and-upstream";
import { systemClock, testKey } from "../support/test-server";

jest.setTimeout(90_000);

const REUSE_DELAY_MS = 500;

/** A helper event with the time (performance.now) it was seen. */
type Stamped = KeyPoolEvent & { at: number };

interface Running {
  env: KeypoolAndUpstream;
  events: Stamped[];
  proxy: http.Server;
  url: string;
  helper: KeyPoolHelper;
  logLines: string[];
  secrets: string[];
  release: () => void;
}

async function start(
  keys: { provider: "openai" | "anthropic"; key: string }[],
  options: { gatedChunks?: boolean; latencyMs?: number; maxWaitMs?: number } = {},
): Promise<Running> {
  // With gatedChunks, each streamed chunk after the first waits for the test's release().
  let gate: { promise: Promise<void>; resolve: () => void } | undefined;
  const newGate = () => {
    let resolve!: () => void;
    const promise = new Promise<void>((r) => (resolve = r));
    gate = { promise, resolve };
  };
  if (options.gatedChunks) newGate();
  const env = await startKeypoolAndUpstream(keys, {
    keypool: { clock: systemClock, pool: { reuseDelayMs: REUSE_DELAY_MS } },
    chat: {
      latencyMs: options.latencyMs ?? 0,
      betweenChunks: options.gatedChunks ? () => gate!.promise : undefined,
    },
  });
  const logLines: string[] = [];
  const events: Stamped[] = [];
  const helper = new KeyPoolHelper({
    baseUrl: env.keypool.url,
    onEvent: (event: KeyPoolEvent) => {
      events.push({ ...event, at: performance.now() });
      logLines.push(JSON.stringify(event));
    },
  });
  const proxy = createProxy({
    helper,
    openaiBaseUrl: env.upstream.url,
    anthropicBaseUrl: env.upstream.url,
    attempts: 6,
    maxWaitMs: options.maxWaitMs ?? 20_000,
    timeoutMs: 60_000,
    log: (line) => logLines.push(JSON.stringify(line)),
  });
  await new Promise<void>((resolve) => proxy.listen(0, "127.0.0.1", resolve));
  const url = `http://127.0.0.1:${(proxy.address() as AddressInfo).port}`;
  return {
    env,
    events,
    proxy,
    url,
    helper,
    logLines,
    secrets: keys.map((k) => k.key),
    release: () => {
      gate?.resolve();
      newGate();
    },
  };
}

async function stop(r: Running) {
  for (const line of [...r.logLines, ...r.env.serverLog]) for (const secret of r.secrets) expect(line).not.toContain(secret);
  r.proxy.closeAllConnections();
  await new Promise((resolve) => r.proxy.close(resolve));
  await r.env.close();
}

const chatBody = (i: number, stream: boolean) =>
  JSON.stringify({ model: "gpt-4o-mini", stream, messages: [{ role: "user", content: `question ${i}: ${"why ".repeat(i % 17)}` }] });

describe("reference proxy", () => {
  it("answers 200 concurrent chat requests over 10 keys with 429s and a 401, and keypool's usage equals the upstream's", async () => {
    const keys = Array.from({ length: 10 }, (_, i) => ({ provider: "openai" as const, key: testKey("openai", 100 + i) }));
    const r = await start(keys, { latencyMs: 5 });
    try {
      // One key is rejected by the upstream; the others answer 429 (with rate-limit headers)
      // every 3rd to 6th request.
      r.env.chat.setPlan(keys[0].key, () => "revoked");
      keys.slice(1).forEach((k, i) => r.env.chat.setPlan(k.key, rateLimitedEvery(3 + (i % 4))));

      const answers = await Promise.all(
        Array.from({ length: 200 }, async (_, i) => {
          const stream = i % 4 === 0;
          const response = await fetch(`${r.url}/v1/chat/completions`, {
            method: "POST",
            headers: { "content-type": "application/json" },
            body: chatBody(i, stream),
          });
          const text = await response.text();
          return { status: response.status, stream, text };
        }),
      );

      // Every request answered: by a chat answer, or (when all its attempts met 429s) by the
      // upstream's last 429.
      for (const a of answers) expect([200, 429]).toContain(a.status);
      const succeeded = answers.filter((a) => a.status === 200).length;
      expect(succeeded).toBeGreaterThanOrEqual(190);
      for (const a of answers.filter((a) => a.stream && a.status === 200)) {
        expect(a.text).toMatch(/^data: /);
        expect(a.text.trimEnd().endsWith("data: [DONE]")).toBe(true);
      }
      for (const a of answers.filter((a) => !a.stream && a.status === 200)) expect(JSON.parse(a.text)).toMatchObject({ object: "chat.completion" });

      const counts = r.env.chat.countsByKey();
      const rateLimited = [...counts.values()].reduce((sum, c) => sum + c.rateLimited, 0);
      expect(rateLimited).toBeGreaterThan(10);
      // The rejected key answered nothing but 401s (more than one only if a lease's hold ran out
      // before its 401 was reported).
      const rejected = counts.get(keys[0].key)!;
      expect(rejected.requests).toBeGreaterThanOrEqual(1);
      expect(rejected.revoked).toBe(rejected.requests);

      // No key was leased again within its hold. A lease holds its key for the reuse delay, and
      // only a report saying the key has room (the fake's 200s) ends a hold early, whichever
      // lease it came from. Client-side times bound the server's: a lease was granted between
      // the start of its call and its answer; a report applied between the start of its call
      // and its answer. So lease n+1 breaks lease n's hold for sure only if it was answered
      // before both lease n's start + the reuse delay and the start of any 200 report that
      // could have applied after lease n.
      const leasesOf = new Map<string, { from: number; by: number }[]>();
      const roomReportsOf = new Map<string, { from: number; by: number }[]>();
      for (const e of r.events) {
        const list = e.type === "lease" ? leasesOf : e.type === "report" && e.status === 200 ? roomReportsOf : undefined;
        if (!list || !("keyHash" in e) || !("ms" in e)) continue;
        list.set(e.keyHash, [...(list.get(e.keyHash) ?? []), { from: e.at - e.ms, by: e.at }]);
      }
      let leasesChecked = 0;
      for (const [hash, leases] of leasesOf) {
        const reports = roomReportsOf.get(hash) ?? [];
        for (let i = 1; i < leases.length; i++) {
          const previous = leases[i - 1];
          const roomFrom = Math.min(...reports.filter((rep) => rep.by >= previous.from).map((rep) => rep.from));
          const holdEndsNoEarlierThan = Math.min(roomFrom, previous.from + REUSE_DELAY_MS);
          expect(leases[i].by).toBeGreaterThanOrEqual(holdEndsNoEarlierThan);
          leasesChecked++;
        }
      }
      expect(leasesChecked).toBeGreaterThan(150);

      // keypool's counts equal the upstream's own: tokens, prompts (one per upstream request:
      // each attempt ends its lease with IncrementUsage) and leases.
      const { keys: statuses } = await r.helper.client.listKeys({});
      for (const k of keys) {
        const status = statuses.find((s) => s.keyHash === r.env.hashOf(k.key))!;
        const c = counts.get(k.key) ?? { requests: 0, inputTokens: 0, outputTokens: 0 };
        expect({ key: k.key, input: status.usage.turbo?.inputTokens ?? 0n, output: status.usage.turbo?.outputTokens ?? 0n, prompts: status.promptCount, leases: status.leaseCount }).toEqual({
          key: k.key,
          input: BigInt(c.inputTokens),
          output: BigInt(c.outputTokens),
          prompts: BigInt(c.requests),
          leases: BigInt(c.requests),
        });
        expect(status.inFlight).toBe(0);
      }
      expect(statuses.find((s) => s.keyHash === r.env.hashOf(keys[0].key))!.state).toBe(KeyState.REVOKED);
      const totalOk = [...counts.values()].reduce((sum, c) => sum + c.ok, 0);
      expect(totalOk).toBe(succeeded);
    } finally {
      await stop(r);
    }
  });

  it.each([
    ["OpenAI", "/v1/chat/completions", { model: "gpt-4o-mini", stream: true, messages: [{ role: "user", content: "stream it" }] }],
    ["Anthropic", "/v1/messages", { model: "claude-3-5-haiku-20241022", max_tokens: 64, stream: true, messages: [{ role: "user", content: "stream it" }] }],
  ])("streams %s answers chunk by chunk as the upstream sends them, and counts their tokens", async (_name, path, body) => {
    const keys = [{ provider: "openai" as const, key: testKey("openai", 1) }, { provider: "anthropic" as const, key: testKey("anthropic", 1) }];
    const r = await start(keys, { gatedChunks: true });
    try {
      const response = await fetch(`${r.url}${path}`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body) });
      expect(response.status).toBe(200);
      expect(response.headers.get("content-type")).toBe("text/event-stream");
      const reader = response.body!.getReader();
      const decoder = new TextDecoder();
      let text = "";
      let chunks = 0;
      for (;;) {
        // The upstream sends its next chunk only after release(): whatever arrived here was
        // passed on by the proxy before the upstream's answer was complete.
        const { value, done } = await reader.read();
        if (done) break;
        chunks++;
        text += decoder.decode(value, { stream: true });
        r.release();
      }
      expect(chunks).toBeGreaterThanOrEqual(5);
      expect(text).toContain(path === "/v1/messages" ? "event: message_stop" : "data: [DONE]");

      const secret = path === "/v1/messages" ? keys[1].key : keys[0].key;
      const counted = r.env.chat.countsByKey().get(secret)!;
      const status = (await r.helper.client.listKeys({})).keys.find((k) => k.keyHash === r.env.hashOf(secret))!;
      const family = path === "/v1/messages" ? "claude-haiku" : "turbo";
      expect(status.usage[family]).toMatchObject({ inputTokens: BigInt(counted.inputTokens), outputTokens: BigInt(counted.outputTokens), prompts: 1n });
      expect(counted.outputTokens).toBeGreaterThan(0);
      expect(status.inFlight).toBe(0);
    } finally {
      await stop(r);
    }
  });

  it("ends the lease when the client goes away in the middle of a stream", async () => {
    const keys = [{ provider: "openai" as const, key: testKey("openai", 1) }];
    const r = await start(keys, { gatedChunks: true });
    try {
      const client = new AbortController();
      const response = await fetch(`${r.url}/v1/chat/completions`, {
        method: "POST",
        body: JSON.stringify({ model: "gpt-4o-mini", stream: true, messages: [{ role: "user", content: "stream it" }] }),
        signal: client.signal,
      });
      const reader = response.body!.getReader();
      expect((await reader.read()).done).toBe(false);
      client.abort();
      r.release();
      // The proxy's upstream call is aborted; the helper ends the lease.
      const hash = r.env.hashOf(keys[0].key);
      let status;
      for (let i = 0; i < 100; i++) {
        status = (await r.helper.client.listKeys({})).keys.find((k) => k.keyHash === hash)!;
        if (status.inFlight === 0) break;
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
      expect(status!.inFlight).toBe(0);
      expect(status!.leaseCount).toBe(1n);
      expect(r.events.filter((e) => e.type === "usage")).toHaveLength(1);
    } finally {
      await stop(r);
    }
  });

  it("answers 429 with Retry-After when keypool has no ready key within the proxy's max wait", async () => {
    const keys = [{ provider: "openai" as const, key: testKey("openai", 1) }];
    const r = await start(keys, { maxWaitMs: 0 });
    try {
      // Lease the only key (held for the reuse delay, 500 ms): the proxy's Lease finds none ready.
      await r.helper.client.lease({ model: "gpt-4o-mini" });
      const busy = await fetch(`${r.url}/v1/chat/completions`, { method: "POST", body: chatBody(1, false) });
      expect(busy.status).toBe(429);
      expect(busy.headers.get("retry-after")).toBe("1");
      expect(await busy.json()).toMatchObject({ error: { type: "rate_limit_error" } });
      expect(r.env.chat.countsByKey().size).toBe(0);
    } finally {
      await stop(r);
    }
  });

  it("passes the upstream's last 429 on when every attempt is rate limited; bad requests get 400, a model no key serves 503", async () => {
    const keys = [{ provider: "openai" as const, key: testKey("openai", 1) }];
    const r = await start(keys);
    try {
      r.env.chat.setPlan(keys[0].key, rateLimitedEvery(1));
      const first = await fetch(`${r.url}/v1/chat/completions`, { method: "POST", body: chatBody(1, false) });
      // One key: the retry waits for it in keypool (cooldown 250 ms) and gets another 429...
      expect(first.status).toBe(429);
      expect(first.headers.get("x-ratelimit-remaining-requests")).toBe("0");
      expect(await first.json()).toMatchObject({ error: { code: "rate_limit_exceeded" } });

      const bad = await fetch(`${r.url}/v1/chat/completions`, { method: "POST", body: "{" });
      expect(bad.status).toBe(400);
      const unknown = await fetch(`${r.url}/v1/chat/completions`, { method: "POST", body: JSON.stringify({ model: "llama-3-70b", messages: [] }) });
      expect(unknown.status).toBe(400);
      const noAnthropicKey = await fetch(`${r.url}/v1/messages`, { method: "POST", body: JSON.stringify({ model: "claude-3-5-haiku-20241022", messages: [] }) });
      expect(noAnthropicKey.status).toBe(503);
    } finally {
      await stop(r);
    }
  });
});
