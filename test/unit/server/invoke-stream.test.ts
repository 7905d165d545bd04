/**
 * Both ports run a server stream through the interceptors with src/server/invoke-stream.ts,
 * which must behave as connect's own invocation (transformInvokeImplementation) does for what an
 * interceptor or a client can see: the order the interceptors run in, the request they are
 * given, the response headers and trailers they set or replace, and connect's words when a
 * server stream gets no request or two. Each case runs through both and compares.
 */
import { create } from "@bufbuild/protobuf";
import {
  Code,
  ConnectError,
  createHandlerContext,
  createServiceImplSpec,
  type HandlerContext,
  type Interceptor,
  type MethodImplSpec,
} from "@connectrpc/connect";
import { createAsyncIterable, transformInvokeImplementation } from "@connectrpc/connect/protocol";
import { Health, HealthCheckRequestSchema, HealthCheckResponse_ServingStatus } from "../../../gen/ts/grpc/health/v1/health_pb";
import { ServerReflection } from "../../../gen/ts/grpc/reflection/v1/reflection_pb";
import { copyHeaders, invokeStream, onlyRequest, oneRequest, type StreamImplSpec } from "../../../src/server/invoke-stream";

type Impl = Record<string, (...args: never[]) => unknown>;

function specOf(service: typeof Health | typeof ServerReflection, impl: Impl, name: string): StreamImplSpec {
  const spec = createServiceImplSpec(service, impl as never).methods[name] as MethodImplSpec;
  if (spec.kind !== "server_streaming" && spec.kind !== "bidi_streaming") throw new Error(`${name} is not a stream`);
  return spec;
}

function contextFor(spec: StreamImplSpec) {
  return createHandlerContext({
    ...spec,
    service: spec.method.parent,
    requestMethod: "POST",
    protocolName: "grpc",
    timeoutMs: undefined,
    shutdownSignal: new AbortController().signal,
    requestHeader: new Headers({ "x-client": "c1" }),
    url: `http://127.0.0.1/${spec.method.parent.typeName}/${spec.method.name}`,
    responseHeader: { "content-type": "application/grpc+proto" },
    responseTrailer: { "grpc-status": "0" },
  });
}

interface Outcome {
  messages: unknown[];
  error?: { code: Code; message: string };
  header: [string, string][];
  trailer: [string, string][];
}

/** The shared module's run, as both ports drive it: invoke, copy the header, pull, copy the trailer. */
async function viaShared(spec: StreamImplSpec, interceptors: Interceptor[], input: unknown[]): Promise<Outcome> {
  const ctx = contextFor(spec);
  const messages: unknown[] = [];
  let error: Outcome["error"];
  try {
    const response = await invokeStream(spec, interceptors, ctx, createAsyncIterable(input));
    copyHeaders(response.header, ctx.responseHeader);
    for await (const message of response.message) messages.push(create(spec.method.output, message as never));
    copyHeaders(response.trailer, ctx.responseTrailer);
  } catch (reason) {
    const err = ConnectError.from(reason);
    error = { code: err.code, message: err.rawMessage };
  }
  return { messages, error, header: [...ctx.responseHeader], trailer: [...ctx.responseTrailer] };
}

async function viaConnect(spec: StreamImplSpec, interceptors: Interceptor[], input: unknown[]): Promise<Outcome> {
  const ctx = contextFor(spec);
  const messages: unknown[] = [];
  let error: Outcome["error"];
  try {
    for await (const message of transformInvokeImplementation(spec, ctx, interceptors)(createAsyncIterable(input as never[]))) messages.push(message);
  } catch (reason) {
    const err = ConnectError.from(reason);
    error = { code: err.code, message: err.rawMessage };
  }
  return { messages, error, header: [...ctx.responseHeader], trailer: [...ctx.responseTrailer] };
}

async function both(spec: () => StreamImplSpec, interceptors: () => Interceptor[], input: unknown[]): Promise<Outcome> {
  const shared = await viaShared(spec(), interceptors(), input);
  const connect = await viaConnect(spec(), interceptors(), input);
  expect(shared).toEqual(connect);
  return shared;
}

const request = create(HealthCheckRequestSchema, { service: "keypool" });

function watchSpec(seen?: { ctx?: HandlerContext }): StreamImplSpec {
  return specOf(
    Health,
    {
      async *watch(req: { service: string }, ctx: HandlerContext) {
        if (seen) seen.ctx = ctx;
        ctx.responseHeader.set("x-handler", req.service);
        yield { status: HealthCheckResponse_ServingStatus.SERVING };
        yield { status: HealthCheckResponse_ServingStatus.NOT_SERVING };
        ctx.responseTrailer.set("x-handler-done", "yes");
      },
    },
    "watch",
  );
}

describe("invokeStream: a server stream through the interceptors, as connect runs it", () => {
  it("runs the interceptors outermost first, in and out, and hands each the call's request", async () => {
    let order: string[] = [];
    const tracing = (name: string): Interceptor => (next) => async (req) => {
      order.push(`${name} in ${req.method.name} ${req.header.get("x-client")} ${req.stream}`);
      const res = await next(req);
      order.push(`${name} out`);
      return res;
    };
    const interceptors = () => [tracing("outer"), tracing("inner")];

    const shared = await viaShared(watchSpec(), interceptors(), [request]);
    const sharedOrder = order;
    order = [];
    await viaConnect(watchSpec(), interceptors(), [request]);

    expect(sharedOrder).toEqual(["outer in Watch c1 true", "inner in Watch c1 true", "inner out", "outer out"]);
    expect(sharedOrder).toEqual(order);
    expect(shared.messages).toHaveLength(2);
  });

  it("the handler sees what an interceptor passed on: its header, its signal, its context values", async () => {
    const seen: { ctx?: HandlerContext } = {};
    const replaced = new AbortController();
    const interceptor: Interceptor = (next) => (req) => {
      const header = new Headers(req.header);
      header.set("x-added", "by-interceptor");
      return next({ ...req, header, signal: replaced.signal });
    };
    await viaShared(watchSpec(seen), [interceptor], [request]);
    expect(seen.ctx?.requestHeader.get("x-added")).toBe("by-interceptor");
    expect(seen.ctx?.signal).toBe(replaced.signal);
  });

  it("a handler's response header and trailer reach the call's, and so do ones an interceptor replaces", async () => {
    const plain = await both(watchSpec, () => [], [request]);
    expect(plain.header).toEqual(expect.arrayContaining([["x-handler", "keypool"]]));
    expect(plain.trailer).toEqual(expect.arrayContaining([["x-handler-done", "yes"]]));

    const replacing: Interceptor = (next) => async (req) => {
      const res = await next(req);
      if (!res.stream) return res;
      const header = new Headers({ "content-type": "application/grpc+proto", "x-interceptor": "header" });
      const trailer = new Headers({ "grpc-status": "0", "x-interceptor": "trailer" });
      return { ...res, header, trailer };
    };
    // Compared with what it should be, not with connect: connect empties the call's trailer by
    // deleting inside Headers.forEach, which skips the key after each one it deletes.
    const replaced = await viaShared(watchSpec(), [replacing], [request]);
    // The handler's generator runs after the header was copied: what it sets joins the call's.
    expect(replaced.header).toEqual([["content-type", "application/grpc+proto"], ["x-handler", "keypool"], ["x-interceptor", "header"]]);
    expect(replaced.trailer).toEqual([["grpc-status", "0"], ["x-interceptor", "trailer"]]);
    expect(replaced.messages).toHaveLength(2);
  });

  it("a server stream without its request, or with two, fails with connect's words, before the handler runs", async () => {
    let ran = 0;
    const counting = () =>
      specOf(
        Health,
        {
          async *watch() {
            ran++;
            yield { status: HealthCheckResponse_ServingStatus.SERVING };
          },
        },
        "watch",
      );
    const missing = await both(counting, () => [], []);
    expect(missing.error).toEqual({ code: Code.Unimplemented, message: "protocol error: missing input message for server-streaming method" });
    const extra = await both(counting, () => [], [request, request]);
    expect(extra.error).toEqual({ code: Code.Unimplemented, message: "protocol error: received extra input message for server-streaming method" });
    expect(ran).toBe(0);
  });

  it("an interceptor's error and a handler's error mid-stream reach the caller as they were thrown", async () => {
    const denying: Interceptor = () => () => Promise.reject(new ConnectError("no entry", Code.PermissionDenied));
    const denied = await both(watchSpec, () => [denying], [request]);
    expect(denied).toMatchObject({ messages: [], error: { code: Code.PermissionDenied, message: "no entry" } });

    const failing = () =>
      specOf(
        Health,
        {
          async *watch() {
            yield { status: HealthCheckResponse_ServingStatus.SERVING };
            throw new ConnectError("gone", Code.Unavailable);
          },
        },
        "watch",
      );
    const failed = await both(failing, () => [], [request]);
    expect(failed.messages).toHaveLength(1);
    expect(failed.error).toEqual({ code: Code.Unavailable, message: "gone" });
  });

  it("a bidi stream's handler gets every request, in order", async () => {
    const echo = () =>
      specOf(
        ServerReflection,
        {
          async *serverReflectionInfo(requests: AsyncIterable<{ host: string }>) {
            for await (const req of requests) yield { validHost: req.host };
          },
        },
        "serverReflectionInfo",
      );
    const out = await both(echo, () => [], [{ host: "a" }, { host: "b" }, { host: "c" }]);
    expect(out.messages.map((m) => (m as { validHost: string }).validHost)).toEqual(["a", "b", "c"]);
  });
});

describe("oneRequest", () => {
  it("yields its request once, then ends, as a server stream's handler reads it", async () => {
    const request = { model: "gpt-4o" };
    expect(await onlyRequest(oneRequest(request))).toBe(request);
    const seen: unknown[] = [];
    for await (const r of oneRequest(request)) seen.push(r);
    expect(seen).toEqual([request]);
  });

  it("fails the read with the decoding's error instead of a request", async () => {
    const error = new ConnectError("parse binary: premature EOF", Code.InvalidArgument);
    await expect(onlyRequest(oneRequest(undefined, error))).rejects.toBe(error);
  });

  it("ends at once when its reader returns early", async () => {
    const it = oneRequest({})[Symbol.asyncIterator]();
    await it.return!();
    expect(await it.next()).toEqual({ done: true, value: undefined });
  });
});
