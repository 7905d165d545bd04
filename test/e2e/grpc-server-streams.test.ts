/**
 * The main port serves plain gRPC server streams (WatchKeys, Health/Watch) on a path of its own
 * (src/server/grpc-server-streams.ts) and everything else through connect-node. A client must not
 * be able to tell: each request here is sent twice on the main port, once as is and once with a
 * grpc-timeout of an hour (which that path leaves to connect-node and which changes nothing else),
 * and both answers must be the same, byte for byte after decompression: status, headers, every
 * message, trailers. Cancelled streams must free their watch, as on connect's path.
 */
import * as http2 from "node:http2";
import * as zlib from "node:zlib";
import { create, toBinary } from "@bufbuild/protobuf";
import { HealthCheckRequestSchema } from "../../gen/ts/grpc/health/v1/health_pb";
import { WatchKeysRequestSchema } from "../../gen/ts/keypool/v1/keypool_pb";
import { startAccessServer, type AccessServer } from "../support/access-server";
import { grpcFrame } from "../support/raw-grpc";

const TOKENS = { lease: "tok-streams-lease-7a1c", watch: "tok-streams-watch-9b2d" };
const POOL = "/keypool.v1.KeyPoolService/";
const HEALTH_WATCH = "/grpc.health.v1.Health/Watch";
const bearer = (token: string) => ({ authorization: `Bearer ${token}` });
const watchKeys = (batch = false) => grpcFrame(toBinary(WatchKeysRequestSchema, create(WatchKeysRequestSchema, { batch })));
const healthOf = (service: string) => grpcFrame(toBinary(HealthCheckRequestSchema, create(HealthCheckRequestSchema, { service })));

interface Answer {
  status: number;
  headers: Record<string, unknown>;
  /** Each message as [flag, payload hex], the payload decompressed when flagged. */
  messages: [number, string][];
  trailers: Record<string, unknown>;
}

/** One stream: its answer until the trailers, or until `messages` have arrived (then it is cancelled). */
function stream(port: number, path: string, body: Buffer, headers: http2.OutgoingHttpHeaders, messages: number): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const session = http2.connect(`http://127.0.0.1:${port}`);
    session.on("error", reject);
    const timer = setTimeout(() => reject(new Error(`no complete answer for ${path}`)), 5000);
    const req = session.request({ ":method": "POST", ":path": path, "content-type": "application/grpc", te: "trailers", ...headers });
    const answer: Answer = { status: 0, headers: {}, messages: [], trailers: {} };
    let buffer = Buffer.alloc(0);
    req.on("response", (h) => {
      const { date, ...rest } = h;
      answer.status = Number(rest[":status"]);
      answer.headers = { ...rest, date: typeof date };
    });
    req.on("data", (chunk: Buffer) => {
      buffer = Buffer.concat([buffer, chunk]);
      while (buffer.length >= 5 && buffer.length >= 5 + buffer.readUInt32BE(1)) {
        const payload = buffer.subarray(5, 5 + buffer.readUInt32BE(1));
        const plain = buffer[0] === 1 ? (answer.headers["grpc-encoding"] === "br" ? zlib.brotliDecompressSync(payload) : zlib.gunzipSync(payload)) : payload;
        answer.messages.push([buffer[0]!, plain.toString("hex")]);
        buffer = buffer.subarray(5 + payload.length);
      }
      if (answer.messages.length >= messages) req.close(http2.constants.NGHTTP2_CANCEL);
    });
    req.on("trailers", (t) => (answer.trailers = { ...t }));
    req.on("error", () => undefined);
    req.on("close", () => {
      clearTimeout(timer);
      session.close();
      resolve(answer);
    });
    req.end(body);
  });
}

describe("gRPC server streams on the main port", () => {
  let s: AccessServer;
  beforeAll(async () => {
    s = await startAccessServer({
      env: { KEYPOOL_TOKENS: `lease:${TOKENS.lease},watch:${TOKENS.watch}`, KEYPOOL_MAX_MESSAGE_BYTES: "1024" },
      // Enough keys for a snapshot over connect's 1 KiB compression threshold, and a few slices.
      keys: Array.from({ length: 300 }, (_, i) => ({ provider: "openai" as const, key: `sk-streams-${String(i).padStart(40, "0")}` })),
    });
  });
  afterAll(async () => {
    await s?.close();
  });

  const cases: [string, string, Buffer, http2.OutgoingHttpHeaders, number][] = [
    ["Health/Watch of the server", HEALTH_WATCH, healthOf(""), {}, 1],
    ["Health/Watch of an unknown service", HEALTH_WATCH, healthOf("no.such.Service"), {}, 1],
    ["WatchKeys without a token", `${POOL}WatchKeys`, watchKeys(), {}, 1],
    ["WatchKeys with a token that may not watch", `${POOL}WatchKeys`, watchKeys(), bearer(TOKENS.lease), 1],
    ["WatchKeys, every snapshot slice", `${POOL}WatchKeys`, watchKeys(), bearer(TOKENS.watch), 3],
    ["WatchKeys with gzip accepted (compressed slices)", `${POOL}WatchKeys`, watchKeys(true), { ...bearer(TOKENS.watch), "grpc-accept-encoding": "identity,deflate,gzip" }, 3],
    ["WatchKeys with brotli accepted first", `${POOL}WatchKeys`, watchKeys(true), { ...bearer(TOKENS.watch), "grpc-accept-encoding": "br, gzip" }, 2],
    ["WatchKeys with content type application/grpc+proto", `${POOL}WatchKeys`, watchKeys(), { ...bearer(TOKENS.watch), "content-type": "application/grpc+proto" }, 1],
    ["an empty body", `${POOL}WatchKeys`, Buffer.alloc(0), bearer(TOKENS.watch), 1],
    ["two messages", HEALTH_WATCH, Buffer.concat([healthOf(""), healthOf("")]), {}, 1],
    ["a message that does not parse", HEALTH_WATCH, grpcFrame(Buffer.from([0x0a, 0x05, 0x61])), {}, 1],
    ["a compressed flag without an encoding", HEALTH_WATCH, grpcFrame(Buffer.alloc(0), { compressed: true }), {}, 1],
    ["a flag byte that is not a message's", HEALTH_WATCH, Buffer.from([0x80, 0, 0, 0, 0]), {}, 1],
    ["a message over the size limit", HEALTH_WATCH, grpcFrame(Buffer.alloc(2000, 0)), {}, 1],
    ["a length that claims more than sent", HEALTH_WATCH, grpcFrame(Buffer.alloc(0), { declaredLength: 10 }), {}, 1],
  ];

  it.each(cases)("%s: the same answer as connect-node's", async (_what, path, body, headers, messages) => {
    const own = await stream(s.port, path, body, headers, messages);
    const connects = await stream(s.port, path, body, { ...headers, "grpc-timeout": "1H" }, messages);
    expect(own).toEqual(connects);
    expect(own.status).toBe(200);
  });

  it("a cancelled stream frees its watch", async () => {
    const before = s.hub.subscriberCount;
    await Promise.all(Array.from({ length: 20 }, () => stream(s.port, `${POOL}WatchKeys`, watchKeys(), bearer(TOKENS.watch), 1)));
    for (let i = 0; i < 100 && s.hub.subscriberCount !== before; i++) await new Promise((r) => setTimeout(r, 20));
    expect(s.hub.subscriberCount).toBe(before);
  });
});
