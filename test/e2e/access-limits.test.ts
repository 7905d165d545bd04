/**
 * The limits, end to end on a real server: message size (KEYPOOL_MAX_MESSAGE_BYTES), the contract's
 * per-field limits (validated by the pool, seen here through the wire), the cap on open WatchKeys
 * streams (KEYPOOL_MAX_WATCHERS), the cap on Lease waiters per family (KEYPOOL_MAX_WAITERS), and
 * the listener's HTTP/2 limits (KEYPOOL_MAX_CONCURRENT_STREAMS, KEYPOOL_MAX_HEADER_BYTES), on the main
 * port and on the native gRPC port alike. Against one keypool and against two replicas on one
 * Redis, each call sent to a replica in turn (test/support/deployments.ts); what each process
 * bounds on its own (open streams, waiters, the listener's limits) is asked of one keypool
 * process directly, since a balancer spreads those calls over replicas and answers with its own
 * listener limits.
 */
import * as http2 from "node:http2";
import * as grpc from "@grpc/grpc-js";
import { Code, ConnectError, createClient, type Client } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { KeyAdminService, KeyPoolService, Provider } from "../../gen/ts/keypool/v1/keypool_pb";
import type { ManualClock } from "../../src/domain/clock";
import { grpcJsClient, grpcJsUnary, loadGrpcJsPackage } from "../support/clients";
import { PORTS, urlOf } from "../support/ports";
import { startAccessDeployment, type AccessDeployment } from "../support/access-server";
import { DEPLOYMENTS } from "../support/deployments";
import { advanceUntilSettled } from "../support/test-server";

const KEY = "sk-limits-test-key-0000001";
const ENV = {
  KEYPOOL_MAX_MESSAGE_BYTES: "65536",
  KEYPOOL_MAX_WATCHERS: "2",
  KEYPOOL_MAX_WAITERS: "2",
  KEYPOOL_MAX_CONCURRENT_STREAMS: "50",
  KEYPOOL_MAX_HEADER_BYTES: "16384",
};

jest.setTimeout(60_000);

async function failure(p: Promise<unknown>): Promise<ConnectError> {
  try {
    await p;
  } catch (err) {
    return ConnectError.from(err);
  }
  throw new Error("the call succeeded");
}

describe.each(DEPLOYMENTS)("%s", (deployment) => {
  let srv: AccessDeployment;
  let keyHash: string;

  beforeAll(async () => {
    srv = await startAccessDeployment(deployment, { env: ENV, keys: [{ provider: "openai", key: KEY, modelFamilies: ["gpt4o"] }] });
    keyHash = (await srv.pool.listKeys())[0]!.keyHash;
  });
  afterAll(() => srv.close());

  describe.each(PORTS)("on the %s port", (port) => {
    let pool: Client<typeof KeyPoolService>;
    let admin: Client<typeof KeyAdminService>;
    /** The pool service of one keypool process, reached directly. */
    let processPool: Client<typeof KeyPoolService>;
    beforeAll(() => {
      const transport = createGrpcTransport({ baseUrl: urlOf(srv, port) });
      pool = createClient(KeyPoolService, transport);
      admin = createClient(KeyAdminService, transport);
      processPool = createClient(KeyPoolService, createGrpcTransport({ baseUrl: urlOf(srv.process, port) }));
    });

    describe("message size", () => {
      it("refuses a message over KEYPOOL_MAX_MESSAGE_BYTES with RESOURCE_EXHAUSTED, and takes one under it", async () => {
        const big = Array.from({ length: 100 }, (_, i) => ({ key: `sk-big-${port}-${i}-${"x".repeat(900)}` })); // ~92 KiB
        const err = await failure(admin.addKeys({ provider: Provider.OPENAI, keys: big }));
        expect(err.code).toBe(Code.ResourceExhausted);
        expect(err.rawMessage).toMatch(/65536/);
        expect(err.rawMessage).not.toContain("sk-big");
        const fine = await admin.addKeys({ provider: Provider.OPENAI, keys: big.slice(0, 50) });
        expect(fine.added).toBe(50);
      });
    });

    describe("the contract's field limits, through the wire", () => {
      it("model over 256 bytes", async () => {
        const err = await failure(pool.lease({ model: "g".repeat(257) }));
        expect(err.code).toBe(Code.InvalidArgument);
      });

      it("a key over 1 KiB, without echoing the key", async () => {
        const secret = `sk-too-long-${"s".repeat(1100)}`;
        const err = await failure(admin.addKeys({ provider: Provider.OPENAI, keys: [{ key: secret }] }));
        expect(err.code).toBe(Code.InvalidArgument);
        expect(err.rawMessage).toMatch(/1 ?KiB|1024/);
        expect(err.rawMessage).not.toContain("sk-too-long");
      });

      it("over 64 headers, and a header over 8 KiB", async () => {
        const many = Object.fromEntries(Array.from({ length: 65 }, (_, i) => [`x-h-${i}`, "1"]));
        expect((await failure(pool.reportRateLimit({ keyHash, statusCode: 200, headers: many }))).code).toBe(Code.InvalidArgument);
        const long = { "x-ratelimit-reset-requests": "9".repeat(8 * 1024 + 1) };
        expect((await failure(pool.reportRateLimit({ keyHash, statusCode: 200, headers: long }))).code).toBe(Code.InvalidArgument);
        const atLimit = Object.fromEntries(Array.from({ length: 64 }, (_, i) => [`x-h-${i}`, "1"]));
        await expect(pool.reportRateLimit({ keyHash, statusCode: 200, headers: atLimit })).resolves.toBeDefined();
      });

      it("token counts over 10^9", async () => {
        const err = await failure(pool.incrementUsage({ keyHash, model: "gpt-4o", inputTokens: 1_000_000_001n }));
        expect(err.code).toBe(Code.InvalidArgument);
        const out = await failure(pool.incrementUsage({ keyHash, model: "gpt-4o", outputTokens: 2n ** 63n }));
        expect(out.code).toBe(Code.InvalidArgument);
        await expect(pool.incrementUsage({ keyHash, model: "gpt-4o", inputTokens: 1_000_000_000n })).resolves.toBeDefined();
      });
    });

    describe("open WatchKeys streams (KEYPOOL_MAX_WATCHERS=2)", () => {
      it("refuses a third stream with RESOURCE_EXHAUSTED and takes a new one once a stream closes", async () => {
        const open = async () => {
          const abort = new AbortController();
          const it = processPool.watchKeys({}, { signal: abort.signal })[Symbol.asyncIterator]();
          const first = await it.next();
          expect(first.value?.event.case).toBe("snapshot");
          return abort;
        };
        const a = await open();
        const b = await open();
        const err = await failure(open());
        expect(err.code).toBe(Code.ResourceExhausted);
        expect(err.rawMessage).toMatch(/KEYPOOL_MAX_WATCHERS/);
        a.abort();
        for (let i = 0; i < 100 && srv.process.hub.subscriberCount > 1; i++) await new Promise((r) => setTimeout(r, 10));
        const c = await open();
        b.abort();
        c.abort();
        for (let i = 0; i < 100 && srv.process.hub.subscriberCount > 0; i++) await new Promise((r) => setTimeout(r, 10));
        expect(srv.process.hub.subscriberCount).toBe(0);
      });
    });

    describe("Lease waiters per family (KEYPOOL_MAX_WAITERS=2)", () => {
      it("queues two waiters, refuses the third with RESOURCE_EXHAUSTED, then serves the two", async () => {
        const clock = srv.clock as ManualClock;
        clock.advance(60_000); // whatever earlier tests did, the key is ready now
        const first = await processPool.lease({ model: "gpt-4o" }); // holds the key for the reuse delay
        expect(first.keyHash).toBe(keyHash);
        const wait = { model: "gpt-4o", maxWait: { seconds: 30n } };
        const w1 = processPool.lease(wait);
        for (let i = 0; i < 1000 && srv.process.waitingLeases() < 1; i++) await new Promise((r) => setTimeout(r, 2));
        const w2 = processPool.lease(wait);
        for (let i = 0; i < 1000 && srv.process.waitingLeases() < 2; i++) await new Promise((r) => setTimeout(r, 2));
        expect(srv.process.waitingLeases()).toBe(2);
        const third = await failure(processPool.lease(wait));
        expect(third.code).toBe(Code.ResourceExhausted);
        expect(third.rawMessage).toMatch(/wait/i);
        // Time moves on until the reuse delay ends for each in turn, however soon the process
        // (a replica answers waiters after a round trip to Redis) sets its next wake-up.
        expect((await advanceUntilSettled(clock, w1, 1_000)).keyHash).toBe(keyHash);
        expect((await advanceUntilSettled(clock, w2, 1_000)).keyHash).toBe(keyHash);
      });
    });

    describe("HTTP/2 limits of the listener", () => {
      it("advertises KEYPOOL_MAX_CONCURRENT_STREAMS and KEYPOOL_MAX_HEADER_BYTES", async () => {
        const session = http2.connect(urlOf(srv.process, port));
        const settings = await new Promise<http2.Settings>((resolve) => session.once("remoteSettings", resolve));
        session.close();
        expect(settings.maxConcurrentStreams).toBe(50);
        expect(settings.maxHeaderListSize).toBe(16384);
      });

      it("resets a stream whose headers pass KEYPOOL_MAX_HEADER_BYTES once the client has the settings, and keeps serving", async () => {
        // The client sends what it is given (node's own client would refuse a block over 64 KiB
        // before it left); the server's limit applies once the client has acknowledged its
        // settings, which a first call's round trip makes sure of.
        const session = http2.connect(urlOf(srv.process, port), { maxSendHeaderBlockLength: 1 << 20 });
        session.on("error", () => undefined);
        const call = (padding: number) =>
          new Promise<string>((resolve) => {
            const req = session.request({
              ":method": "POST",
              ":path": "/keypool.v1.KeyPoolService/ListKeys",
              "content-type": "application/grpc",
              te: "trailers",
              "x-padding": "p".repeat(padding),
            });
            req.on("response", (h) => resolve(`status ${h[":status"]}`));
            req.on("error", (e) => resolve(`error ${(e as NodeJS.ErrnoException).code} ${e.message}`));
            req.end(Buffer.from([0, 0, 0, 0, 0]));
          });
        try {
          expect(await call(10)).toBe("status 200");
          // 20,000 bytes: over the limit (16,384), far under what HPACK itself bounds.
          expect(await call(20_000)).toMatch(/^error ERR_HTTP2_STREAM_ERROR .*NGHTTP2_ENHANCE_YOUR_CALM/);
          expect(await call(10)).toBe("status 200");
        } finally {
          session.destroy();
        }
        await expect(processPool.listKeys({})).resolves.toBeDefined();
        // What gRPC clients make of the reset, on connections that have the settings by now.
        const err = await failure(processPool.listKeys({}, { headers: { "x-padding": "p".repeat(20_000) } }));
        expect(err.code).toBe(Code.Internal);
        expect(err.rawMessage).toContain("NGHTTP2_ENHANCE_YOUR_CALM");
        const grpcJs = grpcJsClient(loadGrpcJsPackage().KeyPoolService, Number(new URL(urlOf(srv.process, port)).port));
        try {
          await grpcJsUnary(grpcJs, "ListKeys", {});
          const padded = new grpc.Metadata();
          padded.set("x-padding", "p".repeat(20_000));
          const refused = await grpcJsUnary(grpcJs, "ListKeys", {}, { metadata: padded }).then(() => undefined, (e: grpc.ServiceError) => e);
          expect(refused?.code).toBe(grpc.status.RESOURCE_EXHAUSTED);
          await expect(grpcJsUnary(grpcJs, "ListKeys", {})).resolves.toBeDefined();
        } finally {
          grpcJs.close();
        }
      });
    });
  });

  describe("HTTP/1.1 limits of the main port", () => {
    it("answers 431 to HTTP/1.1 headers over KEYPOOL_MAX_HEADER_BYTES, and keeps serving", async () => {
      const res = await fetch(`${srv.process.url}/keypool.v1.KeyPoolService/ListKeys`, {
        method: "POST",
        headers: { "content-type": "application/json", "x-padding": "p".repeat(20_000) },
        body: "{}",
      });
      expect(res.status).toBe(431);
      const ok = await fetch(`${srv.process.url}/keypool.v1.KeyPoolService/ListKeys`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: "{}",
      });
      expect(ok.status).toBe(200);
    });
  });
});
