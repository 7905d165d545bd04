/**
 * The Python client helper (clients/python: sync KeyPool over grpcio, AsyncKeyPool over grpc.aio)
 * against a real keypool over real sockets and the fake upstream's chat endpoints on loopback. Each scenario
 * of clients/python/tests/scenarios.py runs in the Python interpreter that has grpcio; this file
 * sets the upstream's behaviour per key and checks what keypool recorded.
 */
import { execFile } from "node:child_process";
import * as path from "node:path";
import { promisify } from "node:util";
import { createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { KeyPoolService, KeyState } from "../../gen/ts/keypool/v1/keypool_pb";
import { rateLimitedEvery } from "../../src/fake-upstream/chat";
import { startKeypoolAndUpstream, type KeypoolAndUpstream } from "../support/keypool-and-upstream";
import { systemClock, testKey } from "../support/test-server";

const run = promisify(execFile);
const ROOT = path.resolve(__dirname, "../..");
/** An interpreter with grpcio: KEYPOOL_PYTHON, else Debian's (the first python3 on PATH may lack it). */
const PYTHON = process.env.KEYPOOL_PYTHON ?? "/usr/bin/python3";
const OPENAI = [1, 2, 3].map((n) => testKey("openai", n));

interface Event {
  type: string;
  key_hash?: string;
  lease_id?: string;
  status?: number;
}
interface Run {
  outcome: Record<string, unknown> & { elapsed: number };
  events: Event[];
}

let env: KeypoolAndUpstream;

beforeEach(async () => {
  env = await startKeypoolAndUpstream(
    OPENAI.map((key) => ({ provider: "openai" as const, key })),
    { keypool: { clock: systemClock } },
  );
});
afterEach(() => env.close());

async function scenario(name: string): Promise<Run> {
  const { stdout, stderr } = await run(PYTHON, [path.join(ROOT, "clients/python/tests/scenarios.py"), name], {
    env: {
      PATH: process.env.PATH ?? "",
      PYTHONPATH: [path.join(ROOT, "gen/python"), path.join(ROOT, "clients/python")].join(path.delimiter),
      PYTHONDONTWRITEBYTECODE: "1",
      KEYPOOL_ADDRESS: `127.0.0.1:${env.keypool.port}`,
      UPSTREAM_URL: env.upstream.url,
    },
    timeout: 30_000,
  });
  // No secret in any line the helper or keypool wrote.
  for (const line of [stdout, stderr, ...env.serverLog]) for (const secret of OPENAI) expect(line).not.toContain(secret);
  return JSON.parse(stdout) as Run;
}

const leased = (r: Run) => r.events.filter((e) => e.type === "lease").map((e) => e.key_hash!);
/** A key's status as ListKeys (over gRPC) answers it, and every key's. */
async function keyStatus(hash: string) {
  const client = createClient(KeyPoolService, createGrpcTransport({ baseUrl: env.keypool.url }));
  const { keys } = await client.listKeys({});
  return { key: keys.find((k) => k.keyHash === hash)!, all: keys };
}

/** The first upstream request gets `outcome`; every later one succeeds. */
function firstRequestGets(outcome: "rate-limited" | "revoked") {
  let requests = 0;
  for (const key of OPENAI) env.chat.setPlan(key, () => (++requests === 1 ? outcome : "ok"));
}

describe.each(["sync", "async"])("Python client helper (%s)", (mode) => {
  it("moves to the next key after a 429, and the first key is cooling down in ListKeys", async () => {
    firstRequestGets("rate-limited");
    const r = await scenario(`${mode}-429`);
    expect(r.outcome).toMatchObject({ status: 200, attempts: 2, value: expect.stringMatching(/^Keys are leased/) });
    const [first, second] = leased(r);
    expect(second).not.toBe(first);
    const { key, all } = await keyStatus(first);
    expect(key.rateLimitedAt).toBeDefined();
    // Not handed out before the 250 ms cooldown the 429 asked for has passed.
    const ms = (t: { seconds: bigint; nanos: number }) => Number(t.seconds) * 1000 + t.nanos / 1e6;
    expect(ms(key.readyAt!)).toBeGreaterThanOrEqual(ms(key.rateLimitedAt!) + 250);
    for (const k of all) expect(k.inFlight).toBe(0);
  });

  it("a function that raises still ends its lease: in_flight back to 0, and the error reaches the caller", async () => {
    const r = await scenario(`${mode}-throw`);
    expect(r.outcome).toMatchObject({ raised: "RuntimeError", message: "connection reset while sending" });
    const [hash] = leased(r);
    const { key } = await keyStatus(hash);
    expect(key.leaseCount).toBe(1n);
    expect(key.inFlight).toBe(0);
  });
});

describe("Python client helper", () => {
  it("a 401 revokes the key, and the call succeeds on another", async () => {
    firstRequestGets("revoked");
    const r = await scenario("sync-401");
    expect(r.outcome).toMatchObject({ status: 200, attempts: 2 });
    const { key } = await keyStatus(leased(r)[0]);
    expect(key.state).toBe(KeyState.REVOKED);
    expect(key.inFlight).toBe(0);
  });

  it("usage lands on the model's family of the key that served it, with the lease id", async () => {
    const r = await scenario("sync-usage");
    expect(r.outcome).toMatchObject({ status: 200, attempts: 1 });
    const hash = r.outcome.key_hash as string;
    const { key } = await keyStatus(hash);
    const counted = env.chat.countsByKey().get(OPENAI.find((k) => env.hashOf(k) === hash)!)!;
    expect(key.usage.gpt4).toMatchObject({ inputTokens: BigInt(counted.inputTokens), outputTokens: BigInt(counted.outputTokens), prompts: 1n });
    expect(key.usage.turbo).toBeUndefined();
    expect(key.inFlight).toBe(0);
    const lease = r.events.find((e) => e.type === "lease")!;
    expect(r.events.find((e) => e.type === "usage")).toMatchObject({ key_hash: hash, lease_id: lease.lease_id });
  });

  it("passes max_wait through: refused at once without it, served once a key is ready with it", async () => {
    const r = await scenario("sync-max-wait");
    const { refused, waited } = r.outcome as unknown as Record<string, Record<string, unknown>>;
    expect(refused).toMatchObject({ raised: "NoKeyError", code: "RESOURCE_EXHAUSTED" });
    expect(refused.retry_after).toBeGreaterThan(0);
    expect(waited).toMatchObject({ status: 200 });
  });

  it("respects the deadline across retries (sync), and ends every lease it took", async () => {
    for (const key of OPENAI) env.chat.setPlan(key, rateLimitedEvery(1));
    // Each 429 takes 300 ms, so ten attempts would take 3 s; the deadline is 1 s, and a 429 cools
    // its key down for 5 s: no key comes back before the deadline.
    env.chat.latencyMs = 300;
    env.chat.retryAfterMs = 5000;
    const r = await scenario("sync-deadline");
    // keypool's own wait ends a tenth of the time left before the deadline.
    expect(r.outcome.elapsed).toBeGreaterThanOrEqual(0.88);
    expect(r.outcome.elapsed).toBeLessThan(1.6);
    // Either the upstream call timed out, or keypool's wait did and the last 429 came back.
    expect(["HTTPError", "TimeoutError", "URLError"]).toContain(r.outcome.raised);
    const leases = leased(r).length;
    expect(leases).toBeGreaterThanOrEqual(2);
    expect(leases).toBeLessThan(10);
    expect(r.events.filter((e) => e.type === "usage")).toHaveLength(leases);
    // Every lease the helper received is ended. A Lease granted as its deadline passed reaches a
    // client that has given up: that grant, never seen by the helper, is the only lease left in
    // flight (until its TTL).
    const { all } = await keyStatus(leased(r)[0]);
    const granted = all.reduce((n, k) => n + Number(k.leaseCount), 0);
    const inFlight = all.reduce((n, k) => n + k.inFlight, 0);
    expect(inFlight).toBe(granted - leases);
    expect(inFlight).toBeLessThanOrEqual(1);
  });

  it("respects the deadline (asyncio): a call still running at the deadline is cancelled and its lease ended", async () => {
    const r = await scenario("async-deadline");
    expect(r.outcome.raised).toBe("TimeoutError");
    expect(r.outcome.elapsed).toBeGreaterThanOrEqual(0.45);
    expect(r.outcome.elapsed).toBeLessThan(1.5);
    const { key } = await keyStatus(leased(r)[0]);
    expect(key.inFlight).toBe(0);
    expect(key.leaseCount).toBe(1n);
  });
});
