/**
 * The native port's framed write (src/server/grpc-js-framed-write.ts): a server stream's
 * pre-encoded messages go to the HTTP/2 stream as gRPC frames, below grpc-js's Writable. What a
 * client reads must be exactly what grpc-js's own path sends: the same frames (byte for byte),
 * the same trailers, and the messages in order. A real grpc-js server mounted through the adapter,
 * read by a raw HTTP/2 client (the bytes) and by a grpc-js client (the messages), on 127.0.0.1.
 */
import * as http2 from "node:http2";
import fc from "fast-check";
import * as grpc from "@grpc/grpc-js";
import { create, toBinary } from "@bufbuild/protobuf";
import type { HandlerContext } from "@connectrpc/connect";
import {
  HealthCheckRequestSchema,
  HealthCheckResponseSchema,
  HealthCheckResponse_ServingStatus,
  Health,
  type HealthCheckResponse,
} from "../../../gen/ts/grpc/health/v1/health_pb";
import { grpcJsDefinition, grpcJsImplementation } from "../../../src/server/grpc-js-adapter";
import { FramedWriter, framedWriter, grpcFrame } from "../../../src/server/grpc-js-framed-write";
import { withEncoding } from "../../../src/transport/pre-encoded";
import type { MountedService } from "../../../src/server/routes";

/** grpc-js's own framing (BaseServerInterceptingCall.serializeMessage): flag byte, length, message. */
function grpcJsFrame(message: Uint8Array): Buffer {
  const out = Buffer.allocUnsafe(message.length + 5);
  out.writeUInt8(0, 0);
  out.writeUInt32BE(message.length, 1);
  Buffer.from(message).copy(out, 5);
  return out;
}

const STATUSES = [
  HealthCheckResponse_ServingStatus.SERVING,
  HealthCheckResponse_ServingStatus.NOT_SERVING,
  HealthCheckResponse_ServingStatus.SERVICE_UNKNOWN,
  HealthCheckResponse_ServingStatus.UNKNOWN,
];

/**
 * A response carrying its encoding in parts (as WatchKeys' messages do), split at `cut`: the
 * bytes are toBinary's of the same message, so the public path and the framed path must agree.
 */
function preEncoded(status: HealthCheckResponse_ServingStatus, cut: number): HealthCheckResponse {
  const message = create(HealthCheckResponseSchema, { status });
  const bytes = toBinary(HealthCheckResponseSchema, message);
  const at = Math.min(cut, bytes.length);
  return withEncoding(message, [bytes.subarray(0, at), bytes.subarray(at)]);
}

async function serve(messages: () => Iterable<HealthCheckResponse>) {
  const mounted: MountedService = {
    service: Health,
    impl: {
      check: () => ({ status: HealthCheckResponse_ServingStatus.SERVING }),
      // eslint-disable-next-line @typescript-eslint/require-await
      async *watch(_req: unknown, _ctx: HandlerContext) {
        for (const message of messages()) yield message;
      },
    },
  };
  const shutdown = new AbortController();
  const server = new grpc.Server({ "grpc.max_send_message_length": -1, "grpc.enable_channelz": 0 });
  server.addService(grpcJsDefinition(mounted), grpcJsImplementation(mounted, { interceptors: [], shutdownSignal: shutdown.signal }));
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync("127.0.0.1:0", grpc.ServerCredentials.createInsecure(), (err, bound) => (err ? reject(err) : resolve(bound))),
  );
  return {
    port,
    stop: () => {
      shutdown.abort();
      server.forceShutdown();
    },
  };
}

/**
 * One Health/Watch call over raw HTTP/2: the response body's bytes and the trailers. `paused`:
 * the client reads nothing until it resolves (HTTP/2 flow control holds the server back).
 */
function rawWatch(port: number, paused?: Promise<void>): Promise<{ body: Buffer; trailers: http2.IncomingHttpHeaders }> {
  return new Promise((resolve, reject) => {
    const session = http2.connect(`http://127.0.0.1:${port}`);
    session.on("error", reject);
    const stream = session.request({
      ":method": "POST",
      ":path": "/grpc.health.v1.Health/Watch",
      "content-type": "application/grpc",
      te: "trailers",
    });
    const chunks: Buffer[] = [];
    let trailers: http2.IncomingHttpHeaders = {};
    if (paused) {
      stream.pause();
      void paused.then(() => {
        stream.on("data", (chunk: Buffer) => chunks.push(chunk));
        stream.resume();
      });
    } else {
      stream.on("data", (chunk: Buffer) => chunks.push(chunk));
    }
    stream.on("trailers", (t) => (trailers = t));
    stream.on("error", reject);
    stream.on("end", () => {
      session.close();
      resolve({ body: Buffer.concat(chunks), trailers });
    });
    stream.end(grpcJsFrame(toBinary(HealthCheckRequestSchema, create(HealthCheckRequestSchema, { service: "" }))));
  });
}

describe("grpc-js framed write", () => {
  test("a frame is grpc-js's frame of the joined parts, for any parts", () => {
    fc.assert(
      fc.property(fc.array(fc.uint8Array({ maxLength: 300 }), { maxLength: 5 }), (parts) => {
        expect(grpcFrame(parts).equals(grpcJsFrame(Buffer.concat(parts)))).toBe(true);
      }),
    );
  });

  test("a call of another shape than grpc-js 1.14's gets no framed writer: its messages take grpc-js's path", () => {
    expect(framedWriter({} as never)).toBeNull();
    expect(framedWriter({ call: { stream: {} } } as never)).toBeNull();
  });

  test("the bytes on the wire are grpc-js's own, for any stream of pre-encoded messages, and the status is OK", async () => {
    let current: HealthCheckResponse[] = [];
    const server = await serve(() => current);
    const written = jest.spyOn(FramedWriter.prototype, "write");
    try {
      await fc.assert(
        fc.asyncProperty(
          fc.array(fc.record({ status: fc.constantFrom(...STATUSES), cut: fc.nat(4) }), { minLength: 1, maxLength: 20 }),
          async (plan) => {
            current = plan.map(({ status, cut }) => preEncoded(status, cut));
            written.mockClear();
            const { body, trailers } = await rawWatch(server.port);
            const expected = Buffer.concat(plan.map(({ status }) => grpcJsFrame(toBinary(HealthCheckResponseSchema, create(HealthCheckResponseSchema, { status })))));
            expect(body.equals(expected)).toBe(true);
            expect(trailers["grpc-status"]).toBe("0");
            // The first message sends the headers through grpc-js; the rest take the framed path.
            const direct = written.mock.results.filter((r) => r.value === true).length;
            expect(direct).toBe(plan.length - 1);
          },
        ),
        { numRuns: 15 },
      );
    } finally {
      written.mockRestore();
      server.stop();
    }
  });

  test("a client that stops reading holds the stream back (flow control), and gets every frame once it reads", async () => {
    const bodies = Array.from({ length: 200 }, (_, i) => Buffer.alloc(16 * 1024, i));
    let pulled = 0;
    const server = await serve(function* () {
      for (const body of bodies) {
        pulled++;
        yield withEncoding(create(HealthCheckResponseSchema), [body.subarray(0, 3), body.subarray(3)]);
      }
    });
    try {
      let resume!: () => void;
      const reading = rawWatch(server.port, new Promise<void>((resolve) => (resume = resolve)));
      await new Promise((resolve) => setTimeout(resolve, 500));
      // 3.2 MB of messages, of which the connection's and the stream's windows take a small part.
      const pulledWhilePaused = pulled;
      expect(pulledWhilePaused).toBeGreaterThan(0);
      expect(pulledWhilePaused).toBeLessThan(bodies.length);
      resume();
      const { body, trailers } = await reading;
      expect(body.equals(Buffer.concat(bodies.map((b) => grpcJsFrame(b))))).toBe(true);
      expect(trailers["grpc-status"]).toBe("0");
    } finally {
      server.stop();
    }
  });

  test("a client that cancels while held back by flow control ends the handler's stream", async () => {
    let finished!: () => void;
    const ended = new Promise<void>((resolve) => (finished = resolve));
    const body = Buffer.alloc(16 * 1024, 7);
    const server = await serve(function* () {
      try {
        for (;;) yield withEncoding(create(HealthCheckResponseSchema), [body]);
      } finally {
        finished();
      }
    });
    const session = http2.connect(`http://127.0.0.1:${server.port}`);
    try {
      const stream = session.request({ ":method": "POST", ":path": "/grpc.health.v1.Health/Watch", "content-type": "application/grpc", te: "trailers" });
      stream.on("error", () => undefined);
      stream.pause();
      stream.end(grpcJsFrame(toBinary(HealthCheckRequestSchema, create(HealthCheckRequestSchema))));
      await new Promise((resolve) => setTimeout(resolve, 300));
      stream.close(http2.constants.NGHTTP2_CANCEL);
      await ended;
    } finally {
      session.close();
      server.stop();
    }
  });

  test("messages without an encoding keep grpc-js's path, mixed with framed ones, in order", async () => {
    const plain = (status: HealthCheckResponse_ServingStatus) => create(HealthCheckResponseSchema, { status });
    const messages = [
      plain(HealthCheckResponse_ServingStatus.SERVING),
      preEncoded(HealthCheckResponse_ServingStatus.NOT_SERVING, 1),
      plain(HealthCheckResponse_ServingStatus.SERVICE_UNKNOWN),
      preEncoded(HealthCheckResponse_ServingStatus.SERVING, 0),
    ];
    const server = await serve(() => messages);
    const client = new grpc.Client(`127.0.0.1:${server.port}`, grpc.credentials.createInsecure());
    try {
      const received = await new Promise<number[]>((resolve, reject) => {
        const seen: number[] = [];
        const call = client.makeServerStreamRequest(
          "/grpc.health.v1.Health/Watch",
          (req: Uint8Array) => Buffer.from(req),
          (bytes: Buffer) => bytes,
          Buffer.from(toBinary(HealthCheckRequestSchema, create(HealthCheckRequestSchema))),
        );
        call.on("data", (bytes: Buffer) => seen.push(bytes.length === 0 ? 0 : bytes[1]!));
        call.on("error", reject);
        call.on("status", (status: grpc.StatusObject) => (status.code === grpc.status.OK ? resolve(seen) : reject(new Error(status.details))));
      });
      expect(received).toEqual([
        HealthCheckResponse_ServingStatus.SERVING,
        HealthCheckResponse_ServingStatus.NOT_SERVING,
        HealthCheckResponse_ServingStatus.SERVICE_UNKNOWN,
        HealthCheckResponse_ServingStatus.SERVING,
      ]);
    } finally {
      client.close();
      server.stop();
    }
  });
});
