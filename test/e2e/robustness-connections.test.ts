/**
 * Connections that stall or push, over real sockets: half-sent headers, bodies that never end,
 * sessions that never call, too many connections, a flood of reset streams, a flood of waiting
 * Leases. Each is reaped or refused within the configured (here short) limits, and the server
 * keeps serving everyone else.
 */
import * as http2 from "node:http2";
import * as net from "node:net";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { Health, HealthCheckResponse_ServingStatus } from "../../gen/ts/grpc/health/v1/health_pb";
import { KeyPoolService } from "../../gen/ts/keypool/v1/keypool_pb";
import { RetryInfoSchema } from "../../gen/ts/google/rpc/error_details_pb";
import { startAccessServer, type AccessServer } from "../support/access-server";
import { PORTS, portOf, urlOf, type PortName } from "../support/ports";
import { spawnServer, type ChildServer } from "../support/child-server";
import { floodWithResets } from "../support/rapid-reset";
import { HTTP2_PREFACE_BYTES } from "../support/raw-grpc";

const HEADERS_MS = 300;
const REQUEST_MS = 600;
const IDLE_MS = 500;
/** Slack for timers on a busy machine: a connection must be gone well before the next multiple. */
const SLACK_MS = 1500;
const LEASE = "/keypool.v1.KeyPoolService/Lease";
const WATCH = "/keypool.v1.KeyPoolService/WatchKeys";

let srv: AccessServer;
beforeAll(async () => {
  srv = await startAccessServer({
    env: {
      KEYPOOL_ALLOW_NO_AUTH: "1",
      KEYPOOL_MAX_CONNECTIONS: "40",
      KEYPOOL_MAX_CONNECTIONS_PER_ADDRESS: "20",
      KEYPOOL_MAX_STREAM_RESETS: "100",
      KEYPOOL_MAX_WAITERS_TOTAL: "3",
    },
    keys: [{ provider: "openai", key: "sk-connections-0001" }],
    timeouts: { headersMs: HEADERS_MS, requestMs: REQUEST_MS, idleMs: IDLE_MS },
  });
});
afterAll(() => srv.close());

/** Opens a TCP connection from `localAddress`, writes `bytes`, and measures how long the server keeps it. */
function rawConnection(bytes: Buffer | string, localAddress = "127.0.0.1", to = srv.port) {
  const socket = net.connect({ port: to, host: "127.0.0.1", localAddress });
  const opened = Date.now();
  let received = "";
  socket.on("data", (chunk: Buffer) => (received += chunk.toString("latin1")));
  socket.on("error", () => undefined);
  const connected = new Promise<void>((resolve) => socket.once("connect", () => resolve()));
  void connected.then(() => {
    if (bytes.length > 0) socket.write(bytes);
  });
  const closed = new Promise<number>((resolve) => socket.once("close", () => resolve(Date.now() - opened)));
  // The server's first bytes (HTTP/2 SETTINGS) say it has accepted the connection and counted it
  // against the caps; a connect on the client side alone does not.
  const answered = new Promise<void>((resolve) => {
    socket.once("data", () => resolve());
    socket.once("close", () => resolve());
  });
  return { socket, connected, answered, closed, received: () => received };
}

function withTimeout<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  return Promise.race([
    promise,
    new Promise<T>((_, reject) => setTimeout(() => reject(new Error(`${what}: still open after ${ms} ms`)), ms).unref()),
  ]);
}

/** The server notices closed sockets a moment after the client: caps are given back then. */
async function afterServerSawClose(): Promise<void> {
  await new Promise((r) => setTimeout(r, 200));
}

async function expectServing(port: PortName = "main"): Promise<void> {
  const health = await createClient(Health, createGrpcTransport({ baseUrl: urlOf(srv, port) })).check({ service: "" }, { timeoutMs: 5000 });
  expect(health.status).toBe(HealthCheckResponse_ServingStatus.SERVING);
}

describe("HTTP/1.1 connections that stall are reaped within the configured timeouts (the main port; the native port speaks HTTP/2 only)", () => {
  it("HTTP/1.1 headers that never end: 408 and closed after the headers timeout", async () => {
    const c = rawConnection("POST /keypool.v1.KeyPoolService/Lease HTTP/1.1\r\nHost: x\r\nContent-Ty");
    const lived = await withTimeout(c.closed, HEADERS_MS + SLACK_MS, "partial headers");
    expect(lived).toBeGreaterThanOrEqual(HEADERS_MS - 50);
    expect(c.received()).toMatch(/^HTTP\/1\.1 408 /);
  });

  it("HTTP/1.1 with a body that never ends: 408 and closed after the request timeout", async () => {
    const c = rawConnection(
      "POST /keypool.v1.KeyPoolService/Lease HTTP/1.1\r\nHost: x\r\ncontent-type: application/json\r\ncontent-length: 100\r\n\r\n{\"mo",
    );
    const lived = await withTimeout(c.closed, REQUEST_MS + SLACK_MS, "unfinished body");
    expect(lived).toBeGreaterThanOrEqual(REQUEST_MS - 50);
    expect(c.received()).toMatch(/^HTTP\/1\.1 408 /);
  });

  it("an HTTP/1.1 connection kept alive and unused is closed after the idle timeout", async () => {
    const body = '{"service":""}';
    const c = rawConnection(
      `POST /grpc.health.v1.Health/Check HTTP/1.1\r\nHost: x\r\ncontent-type: application/json\r\ncontent-length: ${body.length}\r\n\r\n${body}`,
    );
    const lived = await withTimeout(c.closed, IDLE_MS + SLACK_MS, "kept-alive connection");
    expect(c.received()).toMatch(/^HTTP\/1\.1 200 /);
    expect(lived).toBeGreaterThanOrEqual(IDLE_MS - 50);
  });

  it("is still serving", () => expectServing());
});

describe.each(PORTS)("on the %s port", (port) => {
  describe("stalled HTTP/2 connections are reaped within the configured timeouts", () => {
    it("a connection that sends nothing is closed after the headers timeout (main) or the idle timeout (native: no protocol to sniff)", async () => {
      const limitMs = port === "main" ? HEADERS_MS : IDLE_MS;
      const c = rawConnection("", "127.0.0.1", portOf(srv, port));
      const lived = await withTimeout(c.closed, limitMs + SLACK_MS, "silent connection");
      expect(lived).toBeGreaterThanOrEqual(limitMs - 50);
    });

    it("an HTTP/2 session that opens no stream gets GOAWAY and is closed after the idle timeout", async () => {
      const session = http2.connect(urlOf(srv, port));
      session.on("error", () => undefined);
      const opened = Date.now();
      const goaway = new Promise<number>((resolve) => session.once("goaway", (code: number) => resolve(code)));
      const closed = new Promise<number>((resolve) => session.once("close", () => resolve(Date.now() - opened)));
      expect(await withTimeout(goaway, IDLE_MS + SLACK_MS, "idle HTTP/2 session")).toBe(http2.constants.NGHTTP2_NO_ERROR);
      expect(await withTimeout(closed, SLACK_MS, "idle HTTP/2 session")).toBeGreaterThanOrEqual(IDLE_MS - 50);
    });

    it("an HTTP/2 preface and nothing else is closed too", async () => {
      const c = rawConnection(HTTP2_PREFACE_BYTES, "127.0.0.1", portOf(srv, port));
      await withTimeout(c.closed, IDLE_MS + SLACK_MS, "preface only");
    });

    it("an HTTP/2 stream whose body never ends is reset after the request timeout", async () => {
      const session = http2.connect(urlOf(srv, port));
      session.on("error", () => undefined);
      try {
        const req = session.request({ ":method": "POST", ":path": LEASE, "content-type": "application/grpc", te: "trailers" });
        req.on("error", () => undefined);
        req.write(Buffer.from([0, 0, 0, 0, 50, 0x0a])); // a frame that promises 50 bytes, then nothing
        const opened = Date.now();
        const closed = new Promise<number>((resolve) => req.once("close", () => resolve(Date.now() - opened)));
        expect(await withTimeout(closed, REQUEST_MS + SLACK_MS, "unfinished HTTP/2 request")).toBeGreaterThanOrEqual(REQUEST_MS - 50);
      } finally {
        session.destroy();
      }
    });

    it("a WatchKeys stream keeps its connection open past the idle timeout, and keeps delivering", async () => {
      const transport = createGrpcTransport({ baseUrl: urlOf(srv, port) });
      const abort = new AbortController();
      const stream = createClient(KeyPoolService, transport).watchKeys({}, { signal: abort.signal })[Symbol.asyncIterator]();
      try {
        expect((await stream.next()).value?.event.case).toBe("snapshot");
        await new Promise((r) => setTimeout(r, IDLE_MS * 3));
        const [added] = srv.pool.addKeys([{ provider: "openai", key: `sk-connections-watch-${port}-0002` }]).keyHashes;
        // Updates of the other key (its lease from the port tested before ending) may come first.
        let next = await withTimeout(stream.next(), 5000, "update after idle");
        while (next.value?.event.case === "updated" && next.value.event.value.keyHash !== added) {
          next = await withTimeout(stream.next(), 5000, "update after idle");
        }
        expect(next.value?.event.case).toBe("updated");
        expect(next.value?.event.value).toMatchObject({ keyHash: added });
      } finally {
        abort.abort();
        srv.pool.removeKey(srv.pool.listKeys().find((k) => k.keyHash !== srv.pool.listKeys()[0].keyHash)?.keyHash ?? "");
      }
    });

    it("is still serving", () => expectServing(port));
  });

  describe("connection caps", () => {
    it("past the per-address cap a new connection is closed at once; other addresses are still served", async () => {
      const held = Array.from({ length: 20 }, () => rawConnection(HTTP2_PREFACE_BYTES, "127.0.0.1", portOf(srv, port)));
      await Promise.all(held.map((c) => c.answered));
      const extra = rawConnection(HTTP2_PREFACE_BYTES, "127.0.0.1", portOf(srv, port));
      expect(await withTimeout(extra.closed, 500, "connection past the per-address cap")).toBeLessThan(500);
      // 127.0.0.2 is another loopback address: its own budget.
      const other = createClient(Health, createGrpcTransport({ baseUrl: urlOf(srv, port), nodeOptions: { createConnection: () => net.connect({ port: portOf(srv, port), host: "127.0.0.1", localAddress: "127.0.0.2" }) } }));
      expect((await other.check({ service: "" }, { timeoutMs: 5000 })).status).toBe(HealthCheckResponse_ServingStatus.SERVING);
      for (const c of held) c.socket.destroy();
      await Promise.all(held.map((c) => c.closed));
      await afterServerSawClose();
      await expectServing(port);
    });

    it("past the total cap a new connection is closed at once", async () => {
      const held = [
        ...Array.from({ length: 20 }, () => rawConnection(HTTP2_PREFACE_BYTES, "127.0.0.3", portOf(srv, port))),
        ...Array.from({ length: 20 }, () => rawConnection(HTTP2_PREFACE_BYTES, "127.0.0.4", portOf(srv, port))),
      ];
      await Promise.all(held.map((c) => c.answered));
      const extra = rawConnection(HTTP2_PREFACE_BYTES, "127.0.0.5", portOf(srv, port));
      expect(await withTimeout(extra.closed, 500, "connection past the total cap")).toBeLessThan(500);
      for (const c of held) c.socket.destroy();
      await Promise.all(held.map((c) => c.closed));
      await afterServerSawClose();
      await expectServing(port);
    });
  });

  describe("floods", () => {
    it("a connection that resets streams as fast as it opens them gets GOAWAY ENHANCE_YOUR_CALM", async () => {
      const session = http2.connect(urlOf(srv, port));
      session.on("error", () => undefined);
      await new Promise<void>((resolve) => session.once("connect", () => resolve()));
      const goaway = new Promise<number>((resolve) => session.once("goaway", (code: number) => resolve(code)));
      let sent = 0;
      for (; sent < 5000 && !session.destroyed && !session.closed; sent++) {
        const req = session.request({ ":method": "POST", ":path": LEASE, "content-type": "application/grpc" });
        req.on("error", () => undefined);
        req.close(http2.constants.NGHTTP2_CANCEL);
        // Small bursts, so that the server's own count (not only nghttp2's built-in limit of about
        // 1,000 resets per read burst, which answers INTERNAL_ERROR) sees them.
        if (sent % 20 === 19) await new Promise((r) => setTimeout(r, 2));
      }
      expect(await withTimeout(goaway, 5000, "rapid reset")).toBe(http2.constants.NGHTTP2_ENHANCE_YOUR_CALM);
      expect(sent).toBeLessThan(5000);
      session.destroy();
      await expectServing(port);
    });

    it("a frame-level flood of opened-and-reset streams over several connections is cut off, and the server keeps serving", async () => {
      const results = await resetFlood(portOf(srv, port));
      expect(results.every((r) => r.closedByServer)).toBe(true);
      expect(results.some((r) => r.goawayCode === http2.constants.NGHTTP2_ENHANCE_YOUR_CALM)).toBe(true);
      await expectServing(port);
    });

    it("cancelling a few streams now and then is fine", async () => {
      const session = http2.connect(urlOf(srv, port));
      session.on("error", () => undefined);
      let goaway = false;
      session.on("goaway", () => (goaway = true));
      for (let i = 0; i < 50; i++) {
        const req = session.request({ ":method": "POST", ":path": WATCH, "content-type": "application/grpc", te: "trailers" });
        req.on("error", () => undefined);
        req.end(Buffer.from([0, 0, 0, 0, 0]));
        await new Promise((r) => setTimeout(r, 5));
        req.close(http2.constants.NGHTTP2_CANCEL);
      }
      await new Promise((r) => setTimeout(r, 100));
      expect(goaway).toBe(false);
      session.destroy();
    });

    it("waiting Leases past the cap over all families get RESOURCE_EXHAUSTED with a retry delay", async () => {
      const client = createClient(KeyPoolService, createGrpcTransport({ baseUrl: urlOf(srv, port) }));
      const abort = new AbortController();
      // The only key is now held (reuse delay, fake clock); on the second port it already is.
      await client.lease({ model: "gpt-4" }).catch(() => undefined);
      const waiting = ["gpt-4", "gpt-4", "gpt-4"].map((model) =>
        client.lease({ model, maxWait: { seconds: 60n } }, { signal: abort.signal }).catch((e: unknown) => ConnectError.from(e)),
      );
      for (let i = 0; i < 100 && srv.pool.waitingLeases < 3; i++) await new Promise((r) => setTimeout(r, 10));
      const refused = await client.lease({ model: "gpt-4", maxWait: { seconds: 60n } }).catch((e: unknown) => ConnectError.from(e));
      abort.abort();
      await Promise.all(waiting);
      expect(refused).toBeInstanceOf(ConnectError);
      const err = refused as ConnectError;
      expect(err.code).toBe(Code.ResourceExhausted);
      expect(err.rawMessage).toMatch(/^3 lease requests are already waiting for keys/);
      expect(err.findDetails(RetryInfoSchema)).toHaveLength(1);
    });
  });
});

describe("the built server with its default limits, under a frame-level rapid-reset flood on each port", () => {
  let server: ChildServer;
  beforeAll(async () => {
    server = await spawnServer({ KEYPOOL_GRPC_PORT: "0", OPENAI_KEY: "sk-connections-0001" });
  }, 60_000);
  afterAll(() => server?.stop("SIGKILL"));

  it.each(["main", "native"] as const)("survives it on the %s port: every flooding connection is closed, others are served", async (which) => {
    const listening = server.logs.find((l) => l.msg === "keypool listening")!;
    const port = which === "main" ? server.port : (listening.grpcPort as number);
    const results = await resetFlood(port);
    expect(results.every((r) => r.closedByServer)).toBe(true);
    expect(server.child.exitCode).toBeNull();
    expect(server.child.signalCode).toBeNull();
    const health = createClient(Health, createGrpcTransport({ baseUrl: `http://127.0.0.1:${port}` }));
    expect((await health.check({})).status).toBe(HealthCheckResponse_ServingStatus.SERVING);
  });
});

/** Four connections flooding `port` with opened-and-reset Lease streams for at most 3 s each. */
function resetFlood(port: number) {
  const lease = Buffer.from([0, 0, 0, 0, 7, 0x0a, 0x05, ...Buffer.from("gpt-4")]);
  const deadline = Date.now() + 3000;
  return Promise.all(Array.from({ length: 4 }, () => floodWithResets(port, LEASE, lease, deadline)));
}
