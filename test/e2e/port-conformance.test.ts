/**
 * A client cannot tell the two ports apart except by speed: one scripted sequence of calls runs
 * against the main port of one server and the native gRPC port of a twin (same keys, same
 * settings, same fake clock), and every answer must be identical: response messages (so key
 * choices), status codes, messages, grpc-status-details-bin bytes, stream messages, and what bad
 * bytes on the wire get. Lease ids end in 64 random bits; only those are masked. The request log
 * too has the same line for a call on either port.
 */
import { Writable } from "node:stream";
import { create, toBinary } from "@bufbuild/protobuf";
import { ConnectError } from "@connectrpc/connect";
import * as grpc from "@grpc/grpc-js";
import { KeyPoolService, LeaseRequestSchema } from "../../gen/ts/keypool/v1/keypool_pb";
import { createLogger } from "../../src/log";
import { requestLogInterceptor } from "../../src/transport/request-log";
import { connectClient, loadGrpcJsPackage, type GrpcJsPackage } from "../support/clients";
import { startAccessServer, type AccessServer } from "../support/access-server";
import { portOf, urlOf, type PortName } from "../support/ports";
import { grpcFrame, rawH2Request } from "../support/raw-grpc";
import { startTestServer } from "../support/test-server";
import type { ManualClock } from "../../src/domain/clock";

const TOKENS = { lease: "tok-conf-lease-1a2b", watch: "tok-conf-watch-3c4d", admin: "tok-conf-admin-5e6f" };
const ENV = {
  KEYPOOL_TOKENS: `lease:${TOKENS.lease},watch:${TOKENS.watch},admin:${TOKENS.admin}`,
  KEYPOOL_MAX_MESSAGE_BYTES: "65536",
  KEYPOOL_MAX_WAITERS: "1",
};
const KEYS = [1, 2, 3].map((n) => ({ provider: "openai" as const, key: `sk-conformance-key-000${n}`, modelFamilies: ["turbo", "gpt4o"] }));

type Entry = { step: string; ok?: unknown; code?: number; details?: string; statusDetails?: string; messages?: unknown[] };

const metadataFor = (who: keyof typeof TOKENS | "none" | "wrong") => {
  const md = new grpc.Metadata();
  if (who === "wrong") md.set("authorization", "Bearer tok-conf-admin-5e6g");
  else if (who !== "none") md.set("authorization", `Bearer ${TOKENS[who]}`);
  return md;
};

/** Masks the random half of lease ids, the only thing that differs between two identical pools. */
function masked(value: unknown): unknown {
  return JSON.parse(JSON.stringify(value), (_k, v: unknown) => (typeof v === "string" && /^[0-9a-z]+-[0-9a-f]{16}$/.test(v) ? v.replace(/-[0-9a-f]{16}$/, "-<random>") : v));
}

function unary(client: grpc.Client, method: string, request: object, md: grpc.Metadata, deadlineMs = 5000): Promise<Omit<Entry, "step">> {
  return new Promise((resolve) => {
    const fn = (client as unknown as Record<string, Function>)[method].bind(client);
    fn(request, md, { deadline: Date.now() + deadlineMs }, (err: grpc.ServiceError | null, res: unknown) => {
      if (!err) return resolve({ ok: masked(res) });
      const [details] = err.metadata.get("grpc-status-details-bin") as Buffer[];
      // At the deadline the client ends the call itself, in its own words (with timings).
      if (err.code === grpc.status.DEADLINE_EXCEEDED) return resolve({ code: err.code });
      resolve({ code: err.code, details: err.details, statusDetails: details?.toString("base64") });
    });
  });
}

/** The first `count` messages of a server stream, then the stream is cancelled. */
function firstMessages(client: grpc.Client, method: string, request: object, md: grpc.Metadata, count: number): Promise<Omit<Entry, "step">> {
  return new Promise((resolve) => {
    const call = (client as unknown as Record<string, Function>)[method].call(client, request, md) as grpc.ClientReadableStream<unknown>;
    const messages: unknown[] = [];
    call.on("data", (m) => {
      messages.push(masked(m));
      if (messages.length === count) {
        call.cancel();
        resolve({ messages });
      }
    });
    call.on("error", (err: grpc.ServiceError) => {
      if (err.code !== grpc.status.CANCELLED) resolve({ messages, code: err.code, details: err.details });
    });
  });
}

async function script(srv: AccessServer, port: PortName, pkg: GrpcJsPackage): Promise<Entry[]> {
  const address = `127.0.0.1:${portOf(srv, port)}`;
  const pool = new pkg.KeyPoolService(address, grpc.credentials.createInsecure());
  const admin = new pkg.KeyAdminService(address, grpc.credentials.createInsecure());
  const health = new pkg.Health(address, grpc.credentials.createInsecure());
  const clock = srv.clock as ManualClock;
  const log: Entry[] = [];
  const step = async (name: string, call: Promise<Omit<Entry, "step">>) => log.push({ step: name, ...(await call) });
  const lease = metadataFor("lease");
  const adminMd = metadataFor("admin");
  try {
    await step("lease 1", unary(pool, "Lease", { model: "gpt-3.5-turbo" }, lease));
    await step("lease 2", unary(pool, "Lease", { model: "gpt-4o" }, lease));
    await step("lease 3", unary(pool, "Lease", { model: "gpt-3.5-turbo" }, lease));
    await step("lease: every key busy", unary(pool, "Lease", { model: "gpt-3.5-turbo" }, lease));
    await step("lease: empty model", unary(pool, "Lease", { model: "" }, lease));
    await step("lease: unknown model", unary(pool, "Lease", { model: "no-such-model" }, lease));
    await step("lease: wrong provider", unary(pool, "Lease", { model: "gpt-4o", provider: "PROVIDER_ANTHROPIC" }, lease));
    await step("lease: negative max_wait", unary(pool, "Lease", { model: "gpt-4o", maxWait: { seconds: -1 } }, lease));
    await step("lease: deadline before max_wait", unary(pool, "Lease", { model: "gpt-4o", maxWait: { seconds: 60 } }, lease, 300));
    await step("lease: no token", unary(pool, "Lease", { model: "gpt-4o" }, metadataFor("none")));
    await step("lease: wrong token", unary(pool, "Lease", { model: "gpt-4o" }, metadataFor("wrong")));
    await step("lease: watch role", unary(pool, "Lease", { model: "gpt-4o" }, metadataFor("watch")));
    const hashes = srv.pool.listKeys().map((k) => k.keyHash);
    await step("report 429", unary(pool, "ReportRateLimit", { keyHash: hashes[0], statusCode: 429, headers: { "retry-after": "7" } }, lease));
    await step("report unknown key", unary(pool, "ReportRateLimit", { keyHash: "oai-0000000000000000", statusCode: 200 }, lease));
    await step("report too many headers", unary(pool, "ReportRateLimit", {
      keyHash: hashes[1], statusCode: 200, headers: Object.fromEntries(Array.from({ length: 65 }, (_, i) => [`x-h${i}`, "v"])),
    }, lease));
    await step("usage", unary(pool, "IncrementUsage", { keyHash: hashes[1], model: "gpt-4o", inputTokens: 10, outputTokens: 5 }, lease));
    await step("usage: too many tokens", unary(pool, "IncrementUsage", { keyHash: hashes[1], model: "gpt-4o", inputTokens: "1000000001" }, lease));
    await step("lockout", unary(pool, "GetLockoutPeriod", { model: "gpt-3.5-turbo" }, lease));
    await step("list", unary(pool, "ListKeys", {}, metadataFor("watch")));
    await step("watch snapshot", firstMessages(pool, "WatchKeys", { provider: "PROVIDER_OPENAI" }, metadataFor("watch"), 1));
    await step("watch: bad filter", firstMessages(pool, "WatchKeys", { modelFamilies: ["x".repeat(300)] }, metadataFor("watch"), 1));
    await step("add keys", unary(admin, "AddKeys", { provider: "PROVIDER_ANTHROPIC", keys: [{ key: "sk-ant-conf-1" }, { key: "sk-ant-conf-1" }] }, adminMd));
    await step("add keys: no provider", unary(admin, "AddKeys", { keys: [{ key: "sk-conf-x" }] }, adminMd));
    await step("add keys: over the message limit", unary(admin, "AddKeys", {
      provider: "PROVIDER_OPENAI", keys: Array.from({ length: 80 }, (_, i) => ({ key: `sk-big-${i}-${"x".repeat(900)}` })),
    }, adminMd));
    await step("disable", unary(admin, "DisableKey", { keyHash: hashes[2], state: "KEY_STATE_REVOKED", reason: "401" }, adminMd));
    await step("disable to ACTIVE", unary(admin, "DisableKey", { keyHash: hashes[2], state: "KEY_STATE_ACTIVE" }, adminMd));
    await step("enable", unary(admin, "EnableKey", { keyHash: hashes[2] }, adminMd));
    await step("remove unknown", unary(admin, "RemoveKey", { keyHash: "oai-0000000000000000" }, adminMd));
    await step("admin call with lease role", unary(admin, "RemoveKey", { keyHash: hashes[2] }, lease));
    clock.advance(60_000);
    await step("lease after time passed", unary(pool, "Lease", { model: "gpt-4o" }, lease));
    await step("health", unary(health, "Check", { service: "keypool.v1.KeyPoolService" }, new grpc.Metadata()));
    await step("health: unknown service", unary(health, "Check", { service: "nope" }, new grpc.Metadata()));

    // Bytes no client library would send.
    const auth = { authorization: `Bearer ${TOKENS.lease}` };
    const raw = async (name: string, path: string, body: Buffer, headers: Record<string, string> = auth) => {
      const res = await rawH2Request(portOf(srv, port), path, body, headers);
      log.push({ step: name, code: res.grpcStatus, details: res.grpcMessage === undefined ? undefined : decodeURIComponent(res.grpcMessage), ok: res.httpStatus });
    };
    const leaseBytes = toBinary(LeaseRequestSchema, create(LeaseRequestSchema, { model: "gpt-4o" }));
    await raw("raw: invalid UTF-8", "/keypool.v1.KeyPoolService/Lease", grpcFrame(Buffer.from([0x0a, 0x02, 0xc3, 0x28])));
    await raw("raw: illegal wire type", "/keypool.v1.KeyPoolService/Lease", grpcFrame(Buffer.from([0x0f, 0x01])));
    await raw("raw: truncated message", "/keypool.v1.KeyPoolService/Lease", grpcFrame(leaseBytes.subarray(0, leaseBytes.length - 2)));
    await raw("raw: length of 4 GiB", "/keypool.v1.KeyPoolService/Lease", grpcFrame(leaseBytes, { declaredLength: 0xffffffff }));
    await raw("raw: garbage gzip", "/keypool.v1.KeyPoolService/Lease", grpcFrame(Buffer.from("not gzip"), { compressed: true }), { ...auth, "grpc-encoding": "gzip" });
    await raw("raw: xml content type", "/keypool.v1.KeyPoolService/Lease", grpcFrame(leaseBytes), { ...auth, "content-type": "application/grpc+xml" });
  } finally {
    pool.close();
    admin.close();
    health.close();
  }
  return log;
}

it("the same calls get the same answers on the main port and the native gRPC port", async () => {
  const pkg = loadGrpcJsPackage();
  const transcripts: Record<PortName, Entry[]> = { main: [], native: [] };
  for (const port of ["main", "native"] as const) {
    const srv = await startAccessServer({ env: ENV, keys: KEYS });
    try {
      transcripts[port] = await script(srv, port, pkg);
    } finally {
      await srv.close();
    }
  }
  // The script covers what it means to: successes, refusals with details, and stream messages.
  const main = transcripts.main;
  expect(KEYS.map((k) => k.key)).toContain((main.find((e) => e.step === "lease 1")?.ok as { key?: string } | undefined)?.key);
  expect(main.find((e) => e.step === "lease: every key busy")).toMatchObject({ code: grpc.status.RESOURCE_EXHAUSTED, statusDetails: expect.any(String) });
  expect(main.find((e) => e.step === "watch snapshot")?.messages).toHaveLength(1);
  expect(main.filter((e) => e.code === grpc.status.INVALID_ARGUMENT).length).toBeGreaterThanOrEqual(10);
  expect(main.some((e) => e.code === grpc.status.INTERNAL || e.code === grpc.status.UNKNOWN)).toBe(false);

  for (let i = 0; i < main.length; i++) expect(transcripts.native[i]).toEqual(main[i]);
  expect(transcripts.native).toHaveLength(main.length);
});

describe("the request log", () => {
  it("has one line per call on either port, with the same procedure and code, and no secret", async () => {
    const lines: Record<string, unknown>[] = [];
    const destination = new Writable({
      write(chunk, _enc, done) {
        lines.push(JSON.parse(String(chunk)));
        done();
      },
    });
    const logger = createLogger({ level: "debug", destination });
    const t = await startTestServer({
      keys: [{ provider: "openai", key: KEYS[0].key }],
      pool: { reuseDelayMs: 0 },
      deps: { logger, interceptors: [requestLogInterceptor(logger)] },
    });
    try {
      for (const port of ["main", "native"] as const) {
        const pool = connectClient(KeyPoolService, urlOf(t, port));
        await pool.lease({ model: "gpt-3.5-turbo" }, { headers: { authorization: "Bearer tok-never-logged" } });
        await expect(pool.lease({ model: "" })).rejects.toBeInstanceOf(ConnectError);
      }
    } finally {
      await t.close();
    }
    const rpcLines = lines.filter((l) => l.msg === "rpc" || l.msg === "rpc failed").map((l) => [l.procedure, l.code, l.error]);
    const perPort = [
      ["keypool.v1.KeyPoolService/Lease", "OK", undefined],
      ["keypool.v1.KeyPoolService/Lease", "InvalidArgument", expect.stringContaining("model")],
    ];
    expect(rpcLines).toEqual([...perPort, ...perPort]);
    expect(JSON.stringify(lines)).not.toContain("tok-never-logged");
    expect(JSON.stringify(lines)).not.toContain(KEYS[0].key);
  });
});
