/**
 * A server-streaming or bidi call through the interceptors, for the two transports that write
 * the handler's messages themselves: the native port (src/server/grpc-js-adapter.ts) and the
 * main port's gRPC server streams (src/server/grpc-server-streams.ts). Both run every stream the
 * way connect's own invocation (transformInvokeImplementation) runs it: the same request and
 * response objects, the same handler context, the interceptors wrapped per call, connect's
 * words for a server stream without exactly one request. What differs is that the handler's
 * messages are not passed through connect's per-message generators (normalizeIterable, then a
 * downlevelled async generator's yield*), which a stream open for hours pays for on every
 * message: the caller pulls them straight from the interceptors' stream, makes each a message of
 * the output schema itself (`create`, which returns a message of the schema as it is), and
 * copies the response's header and trailer into the context's (copyHeaders) as connect does.
 */
import {
  Code,
  ConnectError,
  type HandlerContext,
  type Interceptor,
  type MethodImplSpec,
  type StreamRequest,
  type StreamResponse,
} from "@connectrpc/connect";

export type StreamImplSpec = Extract<MethodImplSpec, { kind: "server_streaming" | "bidi_streaming" }>;

/** Runs the call through the interceptors; the response's `message` is the handler's output, unconverted. */
export function invokeStream(spec: StreamImplSpec, interceptors: Interceptor[], ctx: HandlerContext, input: AsyncIterable<unknown>): Promise<StreamResponse> {
  const handler = async (req: StreamRequest): Promise<StreamResponse> => {
    const merged: HandlerContext = { ...ctx, service: req.service, requestHeader: req.header, signal: req.signal, values: req.contextValues };
    const message =
      spec.kind === "server_streaming"
        ? spec.impl((await onlyRequest(req.message)) as never, merged)
        : spec.impl(req.message as never, merged);
    return { stream: true, message, method: spec.method, service: spec.method.parent, header: ctx.responseHeader, trailer: ctx.responseTrailer } as StreamResponse;
  };
  const invoke = interceptors.reduceRight<(req: StreamRequest) => Promise<StreamResponse>>(
    (next, interceptor) => interceptor(next as never) as (req: StreamRequest) => Promise<StreamResponse>,
    handler,
  );
  const req = {
    stream: true,
    message: input,
    method: spec.method,
    requestMethod: ctx.requestMethod,
    url: ctx.url,
    signal: ctx.signal,
    header: ctx.requestHeader,
    service: spec.method.parent,
    contextValues: ctx.values,
  } as StreamRequest;
  try {
    return invoke(req);
  } catch (err) {
    return Promise.reject(err);
  }
}

/** The one request of a server-streaming call (connect's words when there is none or more). */
export async function onlyRequest(requests: AsyncIterable<unknown>): Promise<unknown> {
  const it = requests[Symbol.asyncIterator]();
  const first = await it.next();
  if (first.done === true) throw new ConnectError("protocol error: missing input message for server-streaming method", Code.Unimplemented);
  const second = await it.next();
  if (second.done !== true) throw new ConnectError("protocol error: received extra input message for server-streaming method", Code.Unimplemented);
  return first.value;
}

/** Copies a response header or trailer an interceptor replaced into the call's own, as connect does. */
export function copyHeaders(from: Headers, to: Headers): void {
  if (from === to) return;
  for (const key of [...to.keys()]) to.delete(key);
  from.forEach((value, key) => to.set(key, value));
}

/**
 * A server stream's one request as the interceptors take it (an async iterable), or its
 * decoding's `error`. A plain iterator, not connect's createAsyncIterable (an async generator
 * per call, and each transport wrapped it in a second one): a call's request object keeps its
 * input for the stream's whole life, so whatever it is made of is set up, and copied by the
 * young-generation collector, once per open stream (BENCHMARKS.md §6, "Open storm: what survives
 * the scavenges").
 */
export function oneRequest(request: unknown, error?: unknown): AsyncIterable<never> {
  return { [Symbol.asyncIterator]: () => new OneRequest(request, error) };
}

const TAKEN = Symbol("taken");

class OneRequest implements AsyncIterator<never> {
  constructor(
    private request: unknown,
    private readonly error: unknown,
  ) {}

  next(): Promise<IteratorResult<never>> {
    const request = this.request;
    if (request === TAKEN) return Promise.resolve({ done: true, value: undefined });
    this.request = TAKEN;
    if (this.error !== undefined) return Promise.reject(this.error);
    return Promise.resolve({ done: false, value: request as never });
  }

  return(): Promise<IteratorResult<never>> {
    this.request = TAKEN;
    return Promise.resolve({ done: true, value: undefined });
  }
}
