import * as http2 from "node:http2";
import type { AddressInfo } from "node:net";
import { create } from "@bufbuild/protobuf";
import { connectNodeAdapter } from "@connectrpc/connect-node";
import { reclassifyClientMistakes } from "../../../src/transport/client-mistakes";
import { KeyPoolService, WatchKeysResponseSchema } from "../../../gen/ts/keypool/v1/keypool_pb";
import { grpcFrame, rawH2Request } from "../../support/raw-grpc";

const LEASE = "/keypool.v1.KeyPoolService/Lease";
const WATCH = "/keypool.v1.KeyPoolService/WatchKeys";

/** LeaseRequest{model: "ab"} and the same with invalid UTF-8 in the string. */
const validLease = Buffer.from([0x0a, 0x02, 0x61, 0x62]);
const badUtf8 = Buffer.from([0x0a, 0x02, 0xff, 0xfe]);
const truncated = Buffer.from([0x0a, 0x09, 0x61]);
const illegalTag = Buffer.from([0x0d, 0x01, 0x02, 0x03, 0x04]);

let server: http2.Http2Server;
let port: number;

beforeAll(async () => {
  const routes = reclassifyClientMistakes((router) => {
    router.service(KeyPoolService, {
      lease: (req) => ({ keyHash: req.model }),
      async *watchKeys() {
        yield create(WatchKeysResponseSchema, { sequence: 1n });
      },
    });
  });
  server = http2.createServer({}, connectNodeAdapter({ routes, readMaxBytes: 1024 }));
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  port = (server.address() as AddressInfo).port;
});
afterAll(() => new Promise<void>((resolve) => server.close(() => resolve())));

describe("a message that does not decode is INVALID_ARGUMENT, never INTERNAL", () => {
  it.each([
    ["invalid UTF-8", badUtf8],
    ["a truncated message", truncated],
    ["an illegal tag", illegalTag],
  ])("gRPC: %s", async (_why, payload) => {
    for (const path of [LEASE, WATCH]) {
      const res = await rawH2Request(port, path, grpcFrame(payload));
      expect(res.grpcStatus).toBe(3);
    }
  });

  it("gRPC: a compressed flag without an encoding", async () => {
    const res = await rawH2Request(port, LEASE, grpcFrame(validLease, { compressed: true }));
    expect(res.grpcStatus).toBe(3);
  });

  it("gRPC: good requests and other errors are untouched", async () => {
    expect((await rawH2Request(port, LEASE, grpcFrame(validLease))).grpcStatus).toBe(0);
    expect((await rawH2Request(port, LEASE, grpcFrame(Buffer.alloc(2000)))).grpcStatus).toBe(8);
  });

  it("gRPC-web: the trailer frame says 3", async () => {
    for (const path of [LEASE, WATCH]) {
      const res = await rawH2Request(port, path, grpcFrame(badUtf8), { "content-type": "application/grpc-web+proto" });
      expect(res.body[0]).toBe(0x80);
      const text = res.body.toString("latin1");
      expect(text).toMatch(/grpc-status: ?3\r\n/);
      expect(text).not.toMatch(/grpc-status: ?13/);
    }
  });

  it("Connect unary: HTTP 400 invalid_argument", async () => {
    const res = await rawH2Request(port, LEASE, badUtf8, { "content-type": "application/proto" });
    expect(res.httpStatus).toBe(400);
    const error = JSON.parse(res.body.toString());
    expect(error.code).toBe("invalid_argument");
    expect(error.message).toMatch(/utf-8/);
    expect(Number(res.headers["content-length"])).toBe(res.body.length);
  });

  it("Connect unary: a good request still works", async () => {
    const res = await rawH2Request(port, LEASE, Buffer.from('{"model":"ab"}'), { "content-type": "application/json" });
    expect(res.httpStatus).toBe(200);
    expect(JSON.parse(res.body.toString())).toEqual({ keyHash: "ab" });
  });

  it("Connect streaming: the end-stream message says invalid_argument", async () => {
    const res = await rawH2Request(port, WATCH, grpcFrame(badUtf8), { "content-type": "application/connect+proto" });
    const end = JSON.parse(res.body.subarray(5).toString());
    expect(res.body[0]).toBe(0x02);
    expect(end.error.code).toBe("invalid_argument");
  });
});
