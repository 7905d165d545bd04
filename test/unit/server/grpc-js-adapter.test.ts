/**
 * The grpc-js adapter's unary path (src/server/grpc-js-adapter.ts) makes a call's signal and
 * headers only when first read. What a handler sees must not depend on when it reads them: a
 * signal read after the client cancelled is already aborted with CANCELED, and an interceptor that
 * passes on a copy of the request (with a header of its own) reaches the handler with that
 * header and a working signal. A real grpc-js server and a real gRPC client, on 127.0.0.1.
 */
import * as grpc from "@grpc/grpc-js";
import { Code, ConnectError, createClient, type HandlerContext, type Interceptor } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { Health, HealthCheckResponse_ServingStatus } from "../../../gen/ts/grpc/health/v1/health_pb";
import { grpcJsDefinition, grpcJsImplementation } from "../../../src/server/grpc-js-adapter";
import type { MountedService } from "../../../src/server/routes";

interface Seen {
  header?: string | null;
  aborted?: boolean;
  reason?: unknown;
}

async function serve(interceptors: Interceptor[], check: (ctx: HandlerContext) => Promise<void>) {
  const mounted: MountedService = {
    service: Health,
    impl: {
      async check(_req: unknown, ctx: HandlerContext) {
        await check(ctx);
        return { status: HealthCheckResponse_ServingStatus.SERVING };
      },
    },
  };
  const shutdown = new AbortController();
  const server = new grpc.Server();
  server.addService(grpcJsDefinition(mounted), grpcJsImplementation(mounted, { interceptors, shutdownSignal: shutdown.signal }));
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync("127.0.0.1:0", grpc.ServerCredentials.createInsecure(), (err, bound) => (err ? reject(err) : resolve(bound))),
  );
  const client = createClient(Health, createGrpcTransport({ baseUrl: `http://127.0.0.1:${port}` }));
  return {
    client,
    stop: () => {
      shutdown.abort();
      server.forceShutdown();
    },
  };
}

describe("grpc-js adapter: what a unary handler sees", () => {
  it("a signal first read after the client cancelled is aborted, with CANCELED", async () => {
    const seen: Seen = {};
    let handlerDone!: () => void;
    const done = new Promise<void>((resolve) => (handlerDone = resolve));
    const { client, stop } = await serve([], async (ctx) => {
      await new Promise((resolve) => setTimeout(resolve, 300));
      seen.aborted = ctx.signal.aborted;
      seen.reason = ctx.signal.reason;
      handlerDone();
    });
    try {
      const cancel = new AbortController();
      setTimeout(() => cancel.abort(), 50);
      await expect(client.check({}, { signal: cancel.signal })).rejects.toMatchObject({ code: Code.Canceled });
      await done;
      expect(seen.aborted).toBe(true);
      expect(seen.reason).toBeInstanceOf(ConnectError);
      expect((seen.reason as ConnectError).code).toBe(Code.Canceled);
    } finally {
      stop();
    }
  });

  it("an interceptor that passes on a copy of the request reaches the handler with its header and a live signal", async () => {
    const seen: Seen = {};
    const addHeader: Interceptor = (next) => (req) => next({ ...req, header: new Headers({ "x-added": "by-interceptor" }) });
    const { client, stop } = await serve([addHeader], async (ctx) => {
      seen.header = ctx.requestHeader.get("x-added");
      seen.aborted = ctx.signal.aborted;
    });
    try {
      const res = await client.check({}, { timeoutMs: 5000 });
      expect(res.status).toBe(HealthCheckResponse_ServingStatus.SERVING);
      expect(seen).toEqual({ header: "by-interceptor", aborted: false });
    } finally {
      stop();
    }
  });

  it("a copy without a header of its own gives the handler the client's metadata", async () => {
    const seen: Seen = {};
    const copy: Interceptor = (next) => (req) => next({ ...req });
    const { client, stop } = await serve([copy], async (ctx) => {
      seen.header = ctx.requestHeader.get("x-from-client");
    });
    try {
      await client.check({}, { headers: { "x-from-client": "hello" } });
      expect(seen.header).toBe("hello");
    } finally {
      stop();
    }
  });
});
