/**
 * Hostile input against a running server over real sockets: random bytes on the port, garbage
 * after the HTTP/2 preface, truncated, oversized and lying gRPC frames, wrong content types,
 * invalid UTF-8 in string fields, unknown fields, thousands of connections opened and dropped,
 * a burst of reset streams, and random values in every field of every RPC. The server must
 * never crash, never answer INTERNAL (or UNKNOWN) to a client's mistake, and afterwards still
 * answer a health Check and a Lease correctly. Everything is bounded and seeded. Every battery
 * runs against the main port and the native gRPC port (HTTP/1.1 and Connect: main port only).
 */
import * as http2 from "node:http2";
import * as net from "node:net";
import * as grpc from "@grpc/grpc-js";
import fc from "fast-check";
import { create, toBinary, type DescMessage, type MessageInitShape } from "@bufbuild/protobuf";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import {
  AddKeysRequestSchema,
  DisableKeyRequestSchema,
  EnableKeyRequestSchema,
  GetLockoutPeriodRequestSchema,
  IncrementUsageRequestSchema,
  KeyAdminService,
  KeyPoolService,
  LeaseRequestSchema,
  ListKeysRequestSchema,
  RemoveKeyRequestSchema,
  ReportRateLimitRequestSchema,
  WatchKeysRequestSchema,
} from "../../gen/ts/keypool/v1/keypool_pb";
import { Health, HealthCheckResponse_ServingStatus } from "../../gen/ts/grpc/health/v1/health_pb";
import { grpcFrame, HTTP2_PREFACE_BYTES, rawH1Request, rawH2Request, sendRawBytes, SERVER_FAULT_CODES } from "../support/raw-grpc";
import { PORTS, portOf, urlOf, type PortName } from "../support/ports";
import { startAccessServer, type AccessServer } from "../support/access-server";
import { grpcJsClient, grpcJsUnary, loadGrpcJsPackage } from "../support/clients";
import type { ManualClock } from "../../src/domain/clock";

const ADMIN = "tok-robust-admin-e41b";
const AUTH = { authorization: `Bearer ${ADMIN}` };
const KEY = "sk-robustness-key-00000001";
const MODEL = "gpt-4o";
const SEED = 20261127;

const POOL = "/keypool.v1.KeyPoolService/";
const ADMIN_SVC = "/keypool.v1.KeyAdminService/";
const PATHS = [
  `${POOL}Lease`, `${POOL}ReportRateLimit`, `${POOL}IncrementUsage`, `${POOL}WatchKeys`, `${POOL}GetLockoutPeriod`,
  `${POOL}ListKeys`, `${ADMIN_SVC}AddKeys`, `${ADMIN_SVC}RemoveKey`, `${ADMIN_SVC}DisableKey`, `${ADMIN_SVC}EnableKey`,
  "/grpc.health.v1.Health/Check",
];

let srv: AccessServer;
let keyHash: string;

beforeAll(async () => {
  srv = await startAccessServer({
    env: { KEYPOOL_TOKENS: `admin:${ADMIN}`, KEYPOOL_MAX_MESSAGE_BYTES: "65536" },
    pool: { reuseDelayMs: 0 },
    keys: [{ provider: "openai", key: KEY, modelFamilies: ["gpt4o"] }],
  });
  keyHash = srv.pool.listKeys()[0].keyHash;
});
afterAll(() => srv.close());

/** After every battery: the server is alive, healthy, and leases correctly on `port`. */
async function expectHealthy(port: PortName): Promise<void> {
  // Fuzzed reports may have put the key in a cooldown (at most KEYPOOL_MAX_COOLDOWN, 60 s).
  (srv.clock as ManualClock).advance(120_000);
  const transport = createGrpcTransport({ baseUrl: urlOf(srv, port) });
  const health = await createClient(Health, transport).check({ service: "" }, { timeoutMs: 5000 });
  expect(health.status).toBe(HealthCheckResponse_ServingStatus.SERVING);
  const lease = await createClient(KeyPoolService, transport).lease({ model: MODEL }, { headers: AUTH, timeoutMs: 5000 });
  expect(lease.key).toBe(KEY);
  expect(lease.keyHash).toBe(keyHash);
}

function expectNoServerFault(where: string, grpcStatus: number | undefined, message?: string) {
  if (grpcStatus !== undefined && SERVER_FAULT_CODES.has(grpcStatus)) {
    throw new Error(`${where}: grpc-status ${grpcStatus} (${message})`);
  }
}

describe.each(PORTS)("on the %s port", (port) => {
  describe("bytes that are not HTTP at all", () => {
    it("survives random bytes on the port", async () => {
      await fc.assert(
        fc.asyncProperty(fc.uint8Array({ minLength: 1, maxLength: 4096 }), async (bytes) => {
          await sendRawBytes(portOf(srv, port), Buffer.from(bytes), 50);
        }),
        { seed: SEED, numRuns: 60 },
      );
      await expectHealthy(port);
    });

    it("survives random HTTP/2 frames after a valid preface", async () => {
      await fc.assert(
        fc.asyncProperty(fc.uint8Array({ minLength: 1, maxLength: 2048 }), async (bytes) => {
          await sendRawBytes(portOf(srv, port), Buffer.concat([HTTP2_PREFACE_BYTES, Buffer.from(bytes)]), 50);
        }),
        { seed: SEED, numRuns: 60 },
      );
      await expectHealthy(port);
    });

    it("survives a half-sent preface and a half-sent HTTP/1.1 request", async () => {
      await sendRawBytes(portOf(srv, port), HTTP2_PREFACE_BYTES.subarray(0, 10), 100);
      await sendRawBytes(portOf(srv, port), Buffer.from("POST /keypool.v1.KeyPoolService/Lease HTTP/1.1\r\nHost: x\r\nContent-Le"), 100);
      await sendRawBytes(portOf(srv, port), Buffer.from("GET / HTTP/1.1\r\n\r\n"), 100);
      await expectHealthy(port);
    });
  });

  describe("malformed gRPC frames", () => {
    const lease = toBinary(LeaseRequestSchema, create(LeaseRequestSchema, { model: MODEL }));
    const frames: [string, Buffer][] = [
      ["an empty body", Buffer.alloc(0)],
      ["a truncated prefix", Buffer.from([0, 0, 0])],
      ["a length that claims more than sent", grpcFrame(lease, { declaredLength: lease.length + 50 })],
      ["a length that claims less than sent", grpcFrame(lease, { declaredLength: 1 })],
      ["a length of 4 GiB", grpcFrame(lease, { declaredLength: 0xffffffff })],
      ["an oversized message", grpcFrame(Buffer.alloc(100_000, 0x0a))],
      ["a compressed flag without an encoding", grpcFrame(lease, { compressed: true })],
      ["a truncated message", grpcFrame(lease.subarray(0, lease.length - 2))],
      ["an illegal wire type", grpcFrame(Buffer.from([0x0f, 0x01]))],
      ["two messages for a unary call", Buffer.concat([grpcFrame(lease), grpcFrame(lease)])],
      ["garbage gzip", grpcFrame(Buffer.from("not gzip"), { compressed: true })],
    ];

    it.each(frames)("never answers INTERNAL to %s, on any RPC", async (what, body) => {
      for (const path of PATHS) {
        const headers = what === "garbage gzip" ? { ...AUTH, "grpc-encoding": "gzip" } : AUTH;
        const res = await rawH2Request(portOf(srv, port), path, body, headers);
        expect(res.httpStatus).toBe(200);
        expect(res.grpcStatus).toBeDefined();
        expectNoServerFault(`${what} on ${path}`, res.grpcStatus, res.grpcMessage);
      }
    });

    it("answers RESOURCE_EXHAUSTED to messages over the limit", async () => {
      const res = await rawH2Request(portOf(srv, port), `${POOL}Lease`, grpcFrame(Buffer.alloc(100_000)), AUTH);
      expect(res.grpcStatus).toBe(Code.ResourceExhausted);
    });

    it("is still healthy", () => expectHealthy(port));
  });

  describe("wrong content types", () => {
    const types = ["text/plain", "application/xml", "application/grpc+xml", "multipart/form-data", "application/octet-stream", ""];

    it.each(types)("HTTP/2 %j: refused without a server error", async (contentType) => {
      for (const path of [`${POOL}Lease`, `${POOL}WatchKeys`, `${ADMIN_SVC}AddKeys`]) {
        const res = await rawH2Request(portOf(srv, port), path, Buffer.from("{}"), { ...AUTH, "content-type": contentType });
        expect(res.httpStatus).not.toBe(200);
        expect(res.httpStatus).toBeLessThan(500);
      }
    });

    // HTTP/1.1 and Connect are the main port's alone.
    if (port === "main") {
      it.each(types)("HTTP/1.1 %j: refused without a server error", async (contentType) => {
        const res = await rawH1Request(portOf(srv, port), `${POOL}Lease`, Buffer.from("{}"), { ...AUTH, "content-type": contentType });
        expect(res.status).toBeGreaterThanOrEqual(400);
        expect(res.status).toBeLessThan(500);
      });

      it("Connect JSON that is not JSON, or has wrong types: INVALID_ARGUMENT", async () => {
        for (const body of ["{", "[]", '{"model": 5}', '{"maxWait": "forever"}', "\u0000\u0001"]) {
          const res = await rawH1Request(portOf(srv, port), `${POOL}Lease`, Buffer.from(body), { ...AUTH, "content-type": "application/json" });
          expect(res.status).toBe(400);
          expect(JSON.parse(res.body.toString()).code).toBe("invalid_argument");
        }
      });
    }

    it("is still healthy", () => expectHealthy(port));
  });

  describe("string fields that are not UTF-8, and unknown fields", () => {
    // Field 1 is a string in every request below; 0xC3 0x28 is an invalid UTF-8 sequence.
    const badString = Buffer.from([0x0a, 0x02, 0xc3, 0x28]);
    const stringFirst = [
      `${POOL}Lease`, `${POOL}ReportRateLimit`, `${POOL}IncrementUsage`, `${POOL}GetLockoutPeriod`,
      `${ADMIN_SVC}RemoveKey`, `${ADMIN_SVC}DisableKey`, `${ADMIN_SVC}EnableKey`,
    ];

    it.each(stringFirst)("%s: INVALID_ARGUMENT over gRPC (and Connect on the main port)", async (path) => {
      expect((await rawH2Request(portOf(srv, port), path, grpcFrame(badString), AUTH)).grpcStatus).toBe(Code.InvalidArgument);
      if (port !== "main") return;
      const connect = await rawH2Request(portOf(srv, port), path, badString, { ...AUTH, "content-type": "application/proto" });
      expect(connect.httpStatus).toBe(400);
    });

    it("nested strings too: a KeySpec's key, a header name, a model family", async () => {
      const addKeys = Buffer.from([0x08, 0x01, 0x12, 0x04, 0x0a, 0x02, 0xff, 0xfe]); // provider=1, keys[0].key=<bad>
      expect((await rawH2Request(portOf(srv, port), `${ADMIN_SVC}AddKeys`, grpcFrame(addKeys), AUTH)).grpcStatus).toBe(Code.InvalidArgument);
      const header = Buffer.from([0x1a, 0x06, 0x0a, 0x02, 0xff, 0xfe, 0x12, 0x00]); // headers{<bad>: ""}
      expect((await rawH2Request(portOf(srv, port), `${POOL}ReportRateLimit`, grpcFrame(header), AUTH)).grpcStatus).toBe(Code.InvalidArgument);
      const family = Buffer.from([0x12, 0x02, 0xc3, 0x28]); // model_families[0]=<bad>
      expect((await rawH2Request(portOf(srv, port), `${POOL}WatchKeys`, grpcFrame(family), AUTH)).grpcStatus).toBe(Code.InvalidArgument);
      expect((await rawH2Request(portOf(srv, port), `${POOL}ListKeys`, grpcFrame(family), AUTH)).grpcStatus).toBe(Code.InvalidArgument);
    });

    it("ignores unknown fields: a Lease with fields from the future still leases", async () => {
      const known = toBinary(LeaseRequestSchema, create(LeaseRequestSchema, { model: MODEL }));
      // field 99 varint, field 100 length-delimited, field 2047 fixed64
      const unknown = Buffer.from([0x98, 0x06, 0x2a, 0xa2, 0x06, 0x03, 0x61, 0x62, 0x63, 0xf9, 0x7f, 1, 2, 3, 4, 5, 6, 7, 8]);
      const res = await rawH2Request(portOf(srv, port), `${POOL}Lease`, grpcFrame(Buffer.concat([known, unknown])), AUTH);
      expect(res.grpcStatus).toBe(0);
      expect(res.body.toString("latin1")).toContain(KEY);
    });

    it("is still healthy", () => expectHealthy(port));
  });

  describe("connections opened and dropped", () => {
    it("survives 2,000 connections opened and dropped (50 at a time), and a burst of reset streams", async () => {
      const openAndDrop = (i: number) =>
        new Promise<void>((resolve) => {
          const socket = net.connect(portOf(srv, port), "127.0.0.1");
          socket.on("connect", () => {
            if (i % 3 === 1) socket.write(HTTP2_PREFACE_BYTES);
            if (i % 3 === 2) socket.write("POST / HTTP/1.1\r\n");
            socket.destroy();
          });
          socket.on("close", () => resolve());
          socket.on("error", () => resolve());
        });
      for (let batch = 0; batch < 40; batch++) {
        await Promise.all(Array.from({ length: 50 }, (_, i) => openAndDrop(batch * 50 + i)));
      }

      // Rapid reset: open streams and cancel them at once, on one connection.
      const session = http2.connect(urlOf(srv, port));
      session.on("error", () => undefined);
      await new Promise<void>((resolve) => session.once("connect", () => resolve()));
      for (let i = 0; i < 300 && !session.destroyed; i++) {
        const req = session.request({ ":method": "POST", ":path": `${POOL}Lease`, "content-type": "application/grpc", ...AUTH });
        req.on("error", () => undefined);
        req.close(http2.constants.NGHTTP2_CANCEL);
      }
      session.destroy();
      await expectHealthy(port);
    });
  });

  describe("random values in every field of every RPC", () => {
    let pool: ReturnType<typeof createClient<typeof KeyPoolService>>;
    let admin: ReturnType<typeof createClient<typeof KeyAdminService>>;
    beforeAll(() => {
      const transport = createGrpcTransport({ baseUrl: urlOf(srv, port) });
      pool = createClient(KeyPoolService, transport);
      admin = createClient(KeyAdminService, transport);
    });

    const text = fc.oneof(
      fc.string({ maxLength: 40 }),
      fc.string({ unit: "binary", maxLength: 300 }),
      fc.constantFrom("", MODEL, "gpt-4o-mini", "claude-3-5-sonnet-latest", "o3", "turbo", "gpt4o", "oai-0000000000000000"),
    );
    const enumValue = fc.integer({ min: -3, max: 40 });
    const u64 = fc.bigInt({ min: 0n, max: 2n ** 64n - 1n });
    const duration = fc.record({
      seconds: fc.bigInt({ min: -(2n ** 40n), max: 2n ** 40n }),
      nanos: fc.integer({ min: -999_999_999, max: 999_999_999 }),
    });
    const families = fc.array(text, { maxLength: 6 });

    /** Runs `call` on random requests; every failure must be a client-side code, never INTERNAL/UNKNOWN. */
    async function fuzz<S extends DescMessage>(
      name: string,
      arb: fc.Arbitrary<MessageInitShape<S>>,
      call: (req: MessageInitShape<S>) => Promise<unknown>,
    ) {
      const seen = new Map<string, number>();
      await fc.assert(
        fc.asyncProperty(arb, async (req) => {
          try {
            await call(req);
            seen.set("OK", (seen.get("OK") ?? 0) + 1);
          } catch (err) {
            const e = ConnectError.from(err);
            seen.set(Code[e.code], (seen.get(Code[e.code]) ?? 0) + 1);
            if (e.code === Code.Internal || e.code === Code.Unknown) {
              throw new Error(`${name}: ${Code[e.code]} "${e.rawMessage}"`);
            }
          }
        }),
        { seed: SEED, numRuns: 40 },
      );
      return seen;
    }

    const o = { headers: AUTH, timeoutMs: 300 };

    it("Lease", async () => {
      await fuzz<typeof LeaseRequestSchema>("Lease", fc.record({ model: text, provider: enumValue, maxWait: fc.option(duration, { nil: undefined }) }), (r) => pool.lease(r, o));
    });
    it("ReportRateLimit", async () => {
      await fuzz<typeof ReportRateLimitRequestSchema>(
        "ReportRateLimit",
        fc.record({
          keyHash: fc.oneof(text, fc.constant(keyHash)),
          // Any status but 401, which would (rightly) revoke the key the health check leases.
          statusCode: fc.oneof(fc.constantFrom(200, 429, 500), fc.integer({ min: 0, max: 2 ** 32 - 1 })).filter((c) => c !== 401),
          headers: fc.dictionary(fc.oneof(text, fc.constantFrom("retry-after", "x-ratelimit-reset-requests", "x-ratelimit-remaining-tokens")), text, { maxKeys: 70 }),
          leaseId: text,
        }),
        (r) => pool.reportRateLimit(r, o),
      );
    });
    it("IncrementUsage", async () => {
      await fuzz<typeof IncrementUsageRequestSchema>(
        "IncrementUsage",
        fc.record({ keyHash: fc.oneof(text, fc.constant(keyHash)), model: text, inputTokens: u64, outputTokens: u64, leaseId: text }),
        (r) => pool.incrementUsage(r, o),
      );
    });
    it("GetLockoutPeriod", async () => {
      await fuzz<typeof GetLockoutPeriodRequestSchema>("GetLockoutPeriod", fc.record({ model: text, provider: enumValue }), (r) => pool.getLockoutPeriod(r, o));
    });
    it("ListKeys", async () => {
      await fuzz<typeof ListKeysRequestSchema>("ListKeys", fc.record({ provider: enumValue, modelFamilies: families }), (r) => pool.listKeys(r, o));
    });
    it("WatchKeys", async () => {
      await fuzz<typeof WatchKeysRequestSchema>("WatchKeys", fc.record({ provider: enumValue, modelFamilies: families }), async (r) => {
        const abort = new AbortController();
        const it = pool.watchKeys(r, { headers: AUTH, signal: abort.signal })[Symbol.asyncIterator]();
        try {
          await it.next();
        } finally {
          abort.abort();
        }
      });
    });
    it("AddKeys", async () => {
      await fuzz<typeof AddKeysRequestSchema>(
        "AddKeys",
        fc.record({
          provider: enumValue,
          keys: fc.array(fc.record({ key: text, modelFamilies: families, trial: fc.boolean(), organizationId: text }), { maxLength: 5 }),
        }),
        (r) => admin.addKeys(r, o),
      );
    });
    it("RemoveKey, DisableKey, EnableKey", async () => {
      // Random hashes only: the key the health check leases must stay.
      const otherHash = text.filter((t) => t !== keyHash);
      await fuzz<typeof RemoveKeyRequestSchema>("RemoveKey", fc.record({ keyHash: otherHash }), (r) => admin.removeKey(r, o));
      await fuzz<typeof DisableKeyRequestSchema>("DisableKey", fc.record({ keyHash: otherHash, state: enumValue, reason: text }), (r) => admin.disableKey(r, o));
      await fuzz<typeof EnableKeyRequestSchema>("EnableKey", fc.record({ keyHash: otherHash }), (r) => admin.enableKey(r, o));
    });

    it("is still healthy, with the known key untouched and every watcher slot given back", async () => {
      expect(srv.pool.getKey(keyHash)?.state).toBe("active");
      for (let i = 0; i < 200 && srv.hub.subscriberCount > 0; i++) await new Promise((r) => setTimeout(r, 10));
      expect(srv.hub.subscriberCount).toBe(0);
      await expectHealthy(port);
    });
  });
});

// What each port answers to a huge value: the pool quotes it cut, and each port cuts every error
// text to 1 KiB (the JSON cases are the main port's own: the native port speaks binary protobuf only).
describe("errors repeat client input only up to a bound", () => {
  // The server with the default 4 MiB message limit, so that a 1 MB value reaches the pool.
  let large: AccessServer;
  beforeAll(async () => {
    large = await startAccessServer({ env: { KEYPOOL_TOKENS: `admin:${ADMIN}` } });
  });
  afterAll(() => large.close());

  it.each(PORTS)("AddKeys with a 1 MB unknown family name over the %s port: grpc-js gets INVALID_ARGUMENT with a cut message", async (port) => {
    const family = "f".repeat(1024 * 1024);
    const grpcJs = grpcJsClient(loadGrpcJsPackage().KeyAdminService, portOf(large, port));
    const metadata = new grpc.Metadata();
    metadata.set("authorization", AUTH.authorization);
    const err = await grpcJsUnary(grpcJs, "addKeys", { provider: "PROVIDER_OPENAI", keys: [{ key: "sk-echo-1", modelFamilies: [family] }] }, { metadata }).then(
      () => undefined,
      (e: grpc.ServiceError) => e,
    );
    grpcJs.close();
    expect(err?.code).toBe(grpc.status.INVALID_ARGUMENT);
    expect(err!.details).toContain("…[truncated: 1048576 bytes in all]");
    expect(err!.details.length).toBeLessThan(1100);
  });

  it("AddKeys with a 1 MB unknown family name over Connect JSON: a small body", async () => {
    const family = "f".repeat(1024 * 1024);
    const connect = await rawH1Request(
      large.port,
      `${ADMIN_SVC}AddKeys`,
      Buffer.from(JSON.stringify({ provider: "PROVIDER_OPENAI", keys: [{ key: "sk-echo-1", modelFamilies: [family] }] })),
      { ...AUTH, "content-type": "application/json" },
    );
    expect(connect.status).toBe(400);
    expect(connect.body.length).toBeLessThan(1100);
  });

  it("a 100 KB digit string in JSON inputTokens: a bounded error over Connect and gRPC+JSON", async () => {
    const body = `{"keyHash":"oai-0000000000000000","model":"${MODEL}","inputTokens":"${"1".repeat(100_000)}"}`;
    const connect = await rawH1Request(large.port, `${POOL}IncrementUsage`, Buffer.from(body), { ...AUTH, "content-type": "application/json" });
    expect(connect.status).toBe(400);
    expect(JSON.parse(connect.body.toString()).code).toBe("invalid_argument");
    expect(connect.body.length).toBeLessThan(1200);
    const grpcJson = await rawH2Request(large.port, `${POOL}IncrementUsage`, grpcFrame(Buffer.from(body)), { ...AUTH, "content-type": "application/grpc+json" });
    expect(grpcJson.grpcStatus).toBe(Code.InvalidArgument);
    expect(grpcJson.grpcMessage).toContain("bytes in all]");
    expect(Buffer.byteLength(grpcJson.grpcMessage!)).toBeLessThan(1100);
  });

  it.each(PORTS)("the %s port is still healthy", (port) => expectHealthy(port));
});

describe("lax input is refused", () => {
  const json = (body: unknown) => Buffer.from(JSON.stringify(body));
  const jsonHeaders = { ...AUTH, "content-type": "application/json" };

  it("an unknown enum name in JSON is INVALID_ARGUMENT, and changes nothing", async () => {
    const disable = await rawH1Request(srv.port, `${ADMIN_SVC}DisableKey`, json({ keyHash, state: "KEY_STATE_FOO" }), jsonHeaders);
    expect(disable.status).toBe(400);
    expect(JSON.parse(disable.body.toString())).toMatchObject({ code: "invalid_argument", message: expect.stringContaining("KEY_STATE_FOO") });
    expect(srv.pool.getKey(keyHash)?.state).toBe("active");
    const list = await rawH1Request(srv.port, `${POOL}ListKeys`, json({ provider: "PROVIDER_FOO" }), jsonHeaders);
    expect(list.status).toBe(400);
    expect(JSON.parse(list.body.toString()).code).toBe("invalid_argument");
  });

  it.each([
    ["an empty body", Buffer.alloc(0)],
    ["two messages", Buffer.concat([grpcFrame(toBinary(LeaseRequestSchema, create(LeaseRequestSchema, { model: MODEL }))), grpcFrame(Buffer.alloc(0))])],
  ])("%s in a unary gRPC or gRPC-web call, or a server-streaming one, is INVALID_ARGUMENT", async (_what, body) => {
    expect((await rawH2Request(srv.port, `${POOL}Lease`, body, AUTH)).grpcStatus).toBe(Code.InvalidArgument);
    expect((await rawH2Request(srv.port, `${POOL}WatchKeys`, body, AUTH)).grpcStatus).toBe(Code.InvalidArgument);
    const web = await rawH2Request(srv.port, `${POOL}Lease`, body, { ...AUTH, "content-type": "application/grpc-web+proto" });
    expect(web.body.toString("latin1")).toMatch(/grpc-status: ?3\r\n/);
  });

  it.each(["80", "02", "81", "40"])("a request frame with the flag byte 0x%s is INVALID_ARGUMENT on every framed protocol", async (hex) => {
    const flag = parseInt(hex, 16);
    const frame = grpcFrame(toBinary(LeaseRequestSchema, create(LeaseRequestSchema, { model: MODEL })));
    frame[0] = flag;
    const grpcLease = await rawH2Request(srv.port, `${POOL}Lease`, frame, AUTH);
    expect(grpcLease.grpcStatus).toBe(Code.InvalidArgument);
    expect(grpcLease.grpcMessage).toContain(`flag byte 0x${hex}`);
    const web = await rawH2Request(srv.port, `${POOL}Lease`, frame, { ...AUTH, "content-type": "application/grpc-web+proto" });
    expect(web.body.toString("latin1")).toMatch(/grpc-status: ?3\r\n/);
    const watchFrame = Buffer.from(frame);
    watchFrame.writeUInt32BE(0, 1);
    const connectStream = await rawH2Request(srv.port, `${POOL}WatchKeys`, watchFrame.subarray(0, 5), {
      ...AUTH,
      "content-type": "application/connect+proto",
    });
    expect(connectStream.body.toString("latin1")).toContain('"code":"invalid_argument"');
  });

  it.each([
    ["negative nanos with positive seconds", { seconds: 1n, nanos: -5 }],
    ["positive nanos with negative seconds", { seconds: -1n, nanos: 5 }],
    ["nanos of 1e9", { seconds: 0n, nanos: 1_000_000_000 }],
    ["nanos below -1e9", { seconds: 0n, nanos: -1_000_000_001 }],
    ["negative nanos alone", { seconds: 0n, nanos: -1 }],
    ["seconds past 10,000 years", { seconds: 315_576_000_001n, nanos: 0 }],
  ])("a max_wait Duration with %s is INVALID_ARGUMENT", async (_what, maxWait) => {
    const body = toBinary(LeaseRequestSchema, create(LeaseRequestSchema, { model: MODEL, maxWait }));
    const res = await rawH2Request(srv.port, `${POOL}Lease`, grpcFrame(body), AUTH);
    expect(res.grpcStatus).toBe(Code.InvalidArgument);
    expect(res.grpcMessage).toMatch(/^max_wait/);
  });

  it.each([
    ["a newline", "sk-robust-new\nline"],
    ["a NUL", "sk-robust-nul\u0000byte"],
  ])("AddKeys with a key containing %s is INVALID_ARGUMENT, and the message never shows the key", async (_what, key) => {
    const admin = createClient(KeyAdminService, createGrpcTransport({ baseUrl: srv.url }));
    const err = await admin.addKeys({ provider: 1, keys: [{ key }] }, { headers: AUTH }).then(() => undefined, (e: unknown) => ConnectError.from(e));
    expect(err?.code).toBe(Code.InvalidArgument);
    expect(err!.rawMessage).toMatch(/control character U\+00(0A|00)/);
    expect(err!.rawMessage).not.toContain("sk-robust");
    expect(srv.pool.size).toBe(1);
  });

  it("is still healthy", () => expectHealthy("main"));
});

/** Decodes base64 4 characters at a time, as gRPC-Web text clients do: a padded group may end each chunk. */
function fromBase64Groups(text: string): Buffer {
  const groups = text.match(/.{1,4}/g) ?? [];
  return Buffer.concat(groups.map((g) => Buffer.from(g, "base64")));
}

describe("gRPC-Web text mode (application/grpc-web-text)", () => {
  const leaseFrame = grpcFrame(toBinary(LeaseRequestSchema, create(LeaseRequestSchema, { model: MODEL })));
  const text = { ...AUTH, "content-type": "application/grpc-web-text", accept: "application/grpc-web-text" };

  it("a Lease sent as base64 is answered as base64: the message, then the trailer frame", async () => {
    const res = await rawH2Request(srv.port, `${POOL}Lease`, Buffer.from(leaseFrame.toString("base64")), text);
    expect(res.httpStatus).toBe(200);
    expect(res.headers["content-type"]).toBe("application/grpc-web-text+proto");
    const decoded = fromBase64Groups(res.body.toString("latin1"));
    expect(decoded[0]).toBe(0);
    expect(decoded.toString("latin1")).toContain(KEY);
    expect(decoded.toString("latin1")).toMatch(/grpc-status: ?0\r\n/);
  });

  it("WatchKeys streams: the snapshot arrives while the stream stays open", async () => {
    const session = http2.connect(srv.url);
    try {
      const req = session.request({ ":method": "POST", ":path": `${POOL}WatchKeys`, ...text });
      req.end(Buffer.from(grpcFrame(Buffer.alloc(0)).toString("base64")));
      let received = "";
      const snapshot = await new Promise<Buffer>((resolve, reject) => {
        req.on("error", reject);
        req.on("data", (chunk: Buffer) => {
          received += chunk.toString("latin1");
          const bytes = fromBase64Groups(received.slice(0, received.length - (received.length % 4)));
          if (bytes.length >= 5 && bytes.length >= 5 + bytes.readUInt32BE(1)) resolve(bytes);
        });
      });
      expect(snapshot[0]).toBe(0);
      expect(snapshot.toString("latin1")).toContain(keyHash);
      expect(req.closed).toBe(false);
      req.close(http2.constants.NGHTTP2_CANCEL);
    } finally {
      session.close();
    }
  });

  it("a body that is not base64 is INVALID_ARGUMENT; text mode with JSON does not exist: 415", async () => {
    const res = await rawH2Request(srv.port, `${POOL}Lease`, Buffer.from("not base64 at all!"), text);
    expect(fromBase64Groups(res.body.toString("latin1")).toString("latin1")).toMatch(/grpc-status: ?3\r\n/);
    const json = await rawH2Request(srv.port, `${POOL}Lease`, Buffer.from(leaseFrame.toString("base64")), {
      ...text,
      "content-type": "application/grpc-web-text+json",
    });
    expect(json.httpStatus).toBe(415);
  });

  it("is still healthy", () => expectHealthy("main"));
});
