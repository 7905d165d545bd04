/**
 * GET /metrics on a real server assembled as main.ts does it (access control, watch hub, state
 * file, instrumented pool): known calls through real clients move the scraped values (parsed, not
 * matched as text), the content type is Prometheus', the watch/admin role rule holds, and no
 * label carries a key hash, a model name or a token.
 */
import * as fs from "node:fs";
import * as http2 from "node:http2";
import * as os from "node:os";
import * as path from "node:path";
import { Code, ConnectError, createClient, type Client } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import { loadAccess } from "../../src/auth/access";
import { readSettings } from "../../src/config/settings";
import { ManualClock } from "../../src/domain/clock";
import { KeyPool } from "../../src/domain/key-pool";
import { silentLogger } from "../../src/log";
import { createServerMetrics, type ServerMetrics } from "../../src/metrics/server-metrics";
import { startServer, type RunningServer } from "../../src/server/start-server";
import { openDurableState, type DurableState } from "../../src/storage/durable-state";
import { createWatchKeys } from "../../src/transport/watch-keys";
import { WatchHub } from "../../src/watch/watch-hub";
import { KeyAdminService, KeyPoolService, KeyState, Provider } from "../../gen/ts/keypool/v1/keypool_pb";
import { grpcJsClient, loadGrpcJsPackage } from "../support/clients";
import { parseExposition, type Exposition } from "../support/prometheus-text";
import { advanceUntilSettled } from "../support/test-server";

const TOKENS = { lease: "tok-lease-m3tr1c", watch: "tok-watch-m3tr1c", admin: "tok-admin-m3tr1c" };
const SECRETS = ["sk-metrics-test-0001", "sk-metrics-test-0002", "sk-ant-metrics-test-0003"];
const PROMETHEUS_TYPE = "text/plain; version=0.0.4; charset=utf-8";

let dir: string;
let clock: ManualClock;
let pool: KeyPool;
let hub: WatchHub;
let state: DurableState;
let served: ServerMetrics;
let server: RunningServer;
let keyPool: Client<typeof KeyPoolService>;
let admin: Client<typeof KeyAdminService>;
let hashes: string[];

const auth = (token: string) => ({ authorization: `Bearer ${token}` });

async function scrape(token: string | null = TOKENS.watch): Promise<{ status: number; type: string | null; text: string }> {
  const res = await fetch(`${server.url}/metrics`, { headers: token ? auth(token) : {} });
  return { status: res.status, type: res.headers.get("content-type"), text: await res.text() };
}

async function metrics(): Promise<Exposition> {
  const { status, text } = await scrape();
  expect(status).toBe(200);
  return parseExposition(text);
}

beforeAll(async () => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), "keypool-metrics-"));
  clock = new ManualClock(1_700_000_000_000);
  const access = loadAccess(
    readSettings({ KEYPOOL_HOST: "127.0.0.1", KEYPOOL_TOKENS: `lease:${TOKENS.lease},watch:${TOKENS.watch},admin:${TOKENS.admin}` }),
  );
  pool = new KeyPool({ clock, reuseDelayMs: 1000 });
  hub = new WatchHub(pool, { clock, coalesceMs: 0 });
  let durable: DurableState | undefined;
  served = createServerMetrics({ pool, clock, watchers: () => hub.subscriberCount, storeQueue: () => durable?.queued ?? 0 });
  state = durable = openDurableState({
    location: path.join(dir, "state.db"),
    pool,
    configured: [
      { provider: "openai", key: SECRETS[0] },
      { provider: "openai", key: SECRETS[1] },
      { provider: "anthropic", key: SECRETS[2] },
    ],
    clock,
    logger: silentLogger,
    onCommitted: (seconds) => served.metrics.committed(seconds),
  });
  server = await startServer(
    { host: "127.0.0.1", port: 0 },
    {
      pool: served.pool,
      metrics: served.metrics,
      tokens: access.tokens,
      durability: state,
      watchKeys: createWatchKeys(hub),
      interceptors: access.interceptors,
      shutdownGraceMs: 200,
    },
  );
  const transport = createConnectTransport({ baseUrl: server.url, httpVersion: "1.1" });
  keyPool = createClient(KeyPoolService, transport);
  admin = createClient(KeyAdminService, transport);
  hashes = pool.listKeys().map((k) => k.keyHash);
});

afterAll(async () => {
  await server?.close();
  hub?.close();
  pool?.close();
  state?.close();
  served?.close();
  fs.rmSync(dir, { recursive: true, force: true });
});

describe("GET /metrics", () => {
  it("answers in the Prometheus text format with the content type Prometheus expects", async () => {
    const { status, type, text } = await scrape();
    expect(status).toBe(200);
    expect(type).toBe(PROMETHEUS_TYPE);
    const exposition = parseExposition(text);
    expect(exposition.types.get("keypool_leases_total")).toBe("counter");
    expect(exposition.types.get("keypool_lease_wait_seconds")).toBe("histogram");
    expect(exposition.types.get("keypool_rpc_duration_seconds")).toBe("histogram");
    expect(exposition.types.get("keypool_store_commit_seconds")).toBe("histogram");
    expect(exposition.types.get("keypool_keys")).toBe("gauge");
    // Process metrics from prom-client's defaults.
    expect(exposition.value("process_resident_memory_bytes")).toBeGreaterThan(0);
    expect(exposition.value("nodejs_eventloop_lag_seconds")).toBeGreaterThanOrEqual(0);
  });

  it("is served over HTTP/2 too", async () => {
    const session = http2.connect(server.url);
    try {
      const { status, type, body } = await new Promise<{ status: number; type: string; body: string }>((resolve, reject) => {
        const req = session.request({ ":path": "/metrics", ...auth(TOKENS.watch) });
        let body = "";
        let status = 0;
        let type = "";
        req.on("response", (headers) => {
          status = Number(headers[":status"]);
          type = String(headers["content-type"]);
        });
        req.setEncoding("utf8").on("data", (chunk: string) => (body += chunk));
        req.on("end", () => resolve({ status, type, body }));
        req.on("error", reject);
        req.end();
      });
      expect(status).toBe(200);
      expect(type).toBe(PROMETHEUS_TYPE);
      expect(parseExposition(body).value("keypool_keys", { provider: "openai", state: "active" })).toBe(2);
    } finally {
      session.close();
    }
  });

  it("needs a watch or admin token when tokens are configured", async () => {
    const none = await scrape(null);
    expect(none.status).toBe(401);
    expect(none.text).toMatch(/bearer token of the watch or admin role/);
    const wrong = await scrape("tok-watch-m3tr1d");
    expect(wrong.status).toBe(401);
    expect(wrong.text).not.toContain("m3tr1c");
    const lease = await scrape(TOKENS.lease);
    expect(lease.status).toBe(403);
    expect(lease.text).toMatch(/needs the watch or admin role; this token has the lease role/);
    expect((await scrape(TOKENS.watch)).status).toBe(200);
    expect((await scrape(TOKENS.admin)).status).toBe(200);
  });

  it("counts keys by provider and state, and ready keys per family, as the pool changes", async () => {
    let m = await metrics();
    expect(m.value("keypool_keys", { provider: "openai", state: "active" })).toBe(2);
    expect(m.value("keypool_keys", { provider: "anthropic", state: "active" })).toBe(1);
    expect(m.value("keypool_keys", { provider: "openai", state: "disabled" })).toBe(0);
    expect(m.value("keypool_keys_ready", { provider: "openai", family: "gpt4" })).toBe(2);

    const openaiHash = pool.listKeys({ provider: "openai" })[0].keyHash;
    const commitsBefore = m.value("keypool_store_commit_seconds_count") ?? 0;
    await admin.disableKey({ keyHash: openaiHash, state: KeyState.OVER_QUOTA, reason: "billing" }, { headers: auth(TOKENS.admin) });
    m = await metrics();
    expect(m.value("keypool_keys", { provider: "openai", state: "active" })).toBe(1);
    expect(m.value("keypool_keys", { provider: "openai", state: "over_quota" })).toBe(1);
    expect(m.value("keypool_keys_ready", { provider: "openai", family: "gpt4" })).toBe(1);
    // DisableKey is acknowledged once committed: the commit was timed.
    expect(m.value("keypool_store_commit_seconds_count")).toBeGreaterThan(commitsBefore);
    expect(m.value("keypool_store_queue_keys")).toBeGreaterThanOrEqual(0);

    await admin.enableKey({ keyHash: openaiHash }, { headers: auth(TOKENS.admin) });
    m = await metrics();
    expect(m.value("keypool_keys", { provider: "openai", state: "active" })).toBe(2);
  });

  it("counts Lease outcomes, waits, reports and tokens by family; the RPCs by method and code", async () => {
    const before = await metrics();
    const leases = (outcome: string, m: Exposition) =>
      m.value("keypool_leases_total", { provider: "openai", family: "gpt4", outcome }) ?? 0;
    const headers = auth(TOKENS.lease);

    // Two keys serve gpt4: two granted at once, then the third is exhausted (reuse delay 1 s).
    const first = await keyPool.lease({ model: "gpt-4" }, { headers });
    await keyPool.lease({ model: "gpt-4" }, { headers });
    const busy = await keyPool.lease({ model: "gpt-4" }, { headers }).catch((e: unknown) => ConnectError.from(e));
    expect(busy).toBeInstanceOf(ConnectError);
    expect((busy as ConnectError).code).toBe(Code.ResourceExhausted);
    // A waiting Lease is granted when the clock passes the reuse delay.
    await advanceUntilSettled(clock, keyPool.lease({ model: "gpt-4", maxWait: { seconds: 5n } }, { headers }), 300);
    // An unknown model is refused, and its name never becomes a label.
    await expect(keyPool.lease({ model: "no-such-model-xyz" }, { headers })).rejects.toMatchObject({ code: Code.InvalidArgument });

    await keyPool.reportRateLimit({ keyHash: first.keyHash, statusCode: 429, headers: {} }, { headers });
    await keyPool.reportRateLimit({ keyHash: first.keyHash, statusCode: 200, headers: {} }, { headers });
    await keyPool.incrementUsage({ keyHash: first.keyHash, model: "gpt-4", inputTokens: 1200n, outputTokens: 34n }, { headers });

    const m = await metrics();
    expect(leases("granted", m) - leases("granted", before)).toBe(2);
    expect(leases("exhausted", m) - leases("exhausted", before)).toBe(1);
    expect(leases("waited", m) - leases("waited", before)).toBe(1);
    expect(m.value("keypool_leases_total", { provider: "unknown", family: "unknown", outcome: "refused" })).toBe(1);

    const waitCount = (mm: Exposition) => mm.value("keypool_lease_wait_seconds_count", { provider: "openai", family: "gpt4" }) ?? 0;
    const waitSum = (mm: Exposition) => mm.value("keypool_lease_wait_seconds_sum", { provider: "openai", family: "gpt4" }) ?? 0;
    // Granted at once (0 s) twice and exhausted at once; the fourth waited until the clock passed
    // the 1 s reuse delay, in 300 ms steps: 1.2 s, or less if it arrived after the first step.
    const bucket = (le: string, mm: Exposition) =>
      mm.value("keypool_lease_wait_seconds_bucket", { provider: "openai", family: "gpt4", le }) ?? 0;
    expect(waitCount(m) - waitCount(before)).toBe(4);
    expect(bucket("0.001", m) - bucket("0.001", before)).toBe(3);
    expect(bucket("2.5", m) - bucket("2.5", before)).toBe(4);
    expect(waitSum(m) - waitSum(before)).toBeGreaterThan(0);
    expect(waitSum(m) - waitSum(before)).toBeLessThanOrEqual(1.2 + 1e-9);

    expect(m.value("keypool_reports_total", { provider: "openai", status_class: "429" })).toBe(1);
    expect(m.value("keypool_reports_total", { provider: "openai", status_class: "2xx" })).toBe(1);
    expect(m.value("keypool_tokens_total", { provider: "openai", family: "gpt4", direction: "input" })).toBe(1200);
    expect(m.value("keypool_tokens_total", { provider: "openai", family: "gpt4", direction: "output" })).toBe(34);

    const rpcs = (method: string, code: string, mm: Exposition) =>
      mm.value("keypool_rpc_duration_seconds_count", { method, code }) ?? 0;
    expect(rpcs("Lease", "OK", m) - rpcs("Lease", "OK", before)).toBe(3);
    expect(rpcs("Lease", "ResourceExhausted", m) - rpcs("Lease", "ResourceExhausted", before)).toBe(1);
    expect(rpcs("Lease", "InvalidArgument", m) - rpcs("Lease", "InvalidArgument", before)).toBe(1);
    expect(rpcs("IncrementUsage", "OK", m)).toBe(1);
  });

  it("counts open WatchKeys streams", async () => {
    const abort = new AbortController();
    const stream = keyPool.watchKeys({ provider: Provider.UNSPECIFIED }, { headers: auth(TOKENS.watch), signal: abort.signal });
    const it = stream[Symbol.asyncIterator]();
    await it.next(); // the snapshot: the watch is open
    expect((await metrics()).value("keypool_watchers")).toBe(1);
    abort.abort();
    await it.next().catch(() => undefined);
    for (let i = 0; i < 50 && hub.subscriberCount > 0; i++) await new Promise((r) => setTimeout(r, 10));
    expect((await metrics()).value("keypool_watchers")).toBe(0);
  });

  it("never puts a key hash, a secret, a model name or a token into a label", async () => {
    const { text } = await scrape();
    const labelValues = parseExposition(text).samples.flatMap((s) => Object.values(s.labels));
    for (const forbidden of [...hashes, ...SECRETS, ...Object.values(TOKENS), "gpt-4", "no-such-model-xyz"]) {
      expect(labelValues).not.toContain(forbidden);
      expect(text).not.toContain(forbidden);
    }
  });
});

describe("both ports feed the same metrics", () => {
  it("counts a Lease on the native gRPC port and one on the main port in the same series", async () => {
    const clock = new ManualClock(1_700_000_000_000);
    const open = new KeyPool({ clock, reuseDelayMs: 0 });
    open.addKeys([{ provider: "openai", key: "sk-metrics-ports-0001" }]);
    const m = createServerMetrics({ pool: open, clock, processMetrics: false });
    const s = await startServer({ host: "127.0.0.1", port: 0, grpcPort: 0 }, { pool: m.pool, metrics: m.metrics, shutdownGraceMs: 100 });
    const native = grpcJsClient(loadGrpcJsPackage().KeyPoolService, s.grpcPort!);
    try {
      await new Promise<void>((resolve, reject) =>
        (native as unknown as Record<string, Function>).Lease({ model: "gpt-4" }, (err: Error | null) => (err ? reject(err) : resolve())),
      );
      await createClient(KeyPoolService, createConnectTransport({ baseUrl: s.url, httpVersion: "2" })).lease({ model: "gpt-4" });
      const scraped = parseExposition(await (await fetch(`${s.url}/metrics`)).text());
      expect(scraped.value("keypool_leases_total", { provider: "openai", family: "gpt4", outcome: "granted" })).toBe(2);
      expect(scraped.value("keypool_rpc_duration_seconds_count", { method: "Lease", code: "OK" })).toBe(2);
    } finally {
      native.close();
      await s.close();
      open.close();
      m.close();
    }
  });
});

describe("GET /metrics without tokens", () => {
  it("needs no token", async () => {
    const open = new KeyPool({ clock: new ManualClock() });
    const m = createServerMetrics({ pool: open, clock: new ManualClock(), processMetrics: false });
    const s = await startServer({ host: "127.0.0.1", port: 0 }, { pool: m.pool, metrics: m.metrics, shutdownGraceMs: 100 });
    try {
      const res = await fetch(`${s.url}/metrics`);
      expect(res.status).toBe(200);
      expect(parseExposition(await res.text()).value("keypool_watchers")).toBe(0);
    } finally {
      await s.close();
      open.close();
      m.close();
    }
  });
});
