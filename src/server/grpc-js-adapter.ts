/**
 * Mounts connect service implementations on a @grpc/grpc-js server, so that the native gRPC port
 * runs the very handlers and interceptors the main port runs (src/server/routes.ts), not a copy.
 *
 * The grpc-js service definition is built from the generated descriptors: each method's path,
 * kind, and protobuf-es toBinary/fromBinary as its codec. Each call gets a connect HandlerContext
 * (request headers from the metadata, the deadline, a signal that fires when the client cancels
 * or the server shuts down) and goes through the same interceptor chain as the main port: error
 * mapping, shutdown gate, request log, access control, through invocations equivalent to
 * connect's own that make less per unary call (NativeCall, unaryInvocation) and per streamed
 * message (src/server/invoke-stream.ts, src/server/write-each.ts).
 *
 * Errors leave as connect would send them on gRPC: the same code, the same message, and the same
 * grpc-status-details-bin (google.rpc.Status with its details, such as RetryInfo).
 */
import { create, fromBinary, toBinary, type DescMessage, type DescMethod, type DescService } from "@bufbuild/protobuf";
import * as grpc from "@grpc/grpc-js";
import {
  Code,
  ConnectError,
  createContextValues,
  createServiceImplSpec,
  type ContextValues,
  type HandlerContext,
  type Interceptor,
  type MethodImplSpec,
  type UnaryRequest,
  type UnaryResponse,
} from "@connectrpc/connect";
import { setTrailerStatus } from "@connectrpc/connect/protocol-grpc";
import { truncated } from "../domain/echo";
import { flatEncoder } from "../transport/flat-binary";
import { flatDecoder } from "../transport/flat-decoder";
import { carriesEncoding, encodedBytes } from "../transport/pre-encoded";
import { ERROR_MESSAGE_LIMIT_BYTES } from "../transport/client-mistakes";
import { copyHeaders, invokeStream, oneRequest } from "./invoke-stream";
import type { MountedService } from "./routes";
import { writeEach } from "./write-each";

export interface GrpcJsAdapterOptions {
  /** The main port's interceptors, in the same order. */
  interceptors: Interceptor[];
  /** Aborts every call in flight when the server shuts down (the main port's shutdownSignal). */
  shutdownSignal: AbortSignal;
  /** What to do with a handler failure after its response can no longer be sent. */
  onAbandoned?: (procedure: string, err: unknown) => void;
}

/**
 * A request that did not decode. grpc-js answers INTERNAL when a deserializer throws; the main
 * port answers INVALID_ARGUMENT with connect's "parse binary: ..." message (the client's mistake),
 * so the deserializer hands this to the handler instead of throwing.
 */
class UndecodableRequest {
  constructor(readonly error: ConnectError) {}
}

/** The flat decoder where the schema allows one (src/transport/flat-decoder.ts), else fromBinary: the same message. */
function decoder(schema: DescMessage): (bytes: Buffer) => unknown {
  const decode = flatDecoder(schema) ?? ((bytes: Buffer) => fromBinary(schema, bytes));
  return (bytes) => {
    try {
      return decode(bytes);
    } catch (err) {
      const message = err instanceof Error ? err.message : String(err);
      return new UndecodableRequest(new ConnectError(`parse binary: ${message}`, Code.InvalidArgument));
    }
  };
}

/** The flat encoder where the schema allows one (src/transport/flat-binary.ts), else toBinary: the same bytes. */
function encoder(schema: DescMessage): (message: never) => Buffer {
  const flat = flatEncoder(schema);
  if (flat) return flat as (message: never) => Buffer;
  return (message) => {
    const bytes = toBinary(schema, message);
    return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  };
}

/**
 * A stream's messages may carry their own encoding (src/transport/pre-encoded.ts: WatchKeys
 * shares one encoded body among many watches), written as it is; others are encoded as usual.
 */
function streamEncoder(schema: DescMessage): (message: never) => Buffer {
  const encode = encoder(schema);
  return (message) => encodedBytes(message) ?? encode(message);
}

/** The grpc-js service definition of a protobuf-es service descriptor. */
export function grpcJsDefinition(mounted: MountedService): grpc.ServiceDefinition {
  const definition: Record<string, grpc.MethodDefinition<unknown, unknown>> = {};
  for (const method of mounted.service.methods) {
    definition[method.localName] = {
      path: procedurePath(method),
      requestStream: method.methodKind === "client_streaming" || method.methodKind === "bidi_streaming",
      responseStream: method.methodKind === "server_streaming" || method.methodKind === "bidi_streaming",
      requestSerialize: encoder(method.input),
      requestDeserialize: decoder(method.input),
      responseSerialize: method.methodKind === "unary" ? encoder(method.output) : streamEncoder(method.output),
      responseDeserialize: decoder(method.output),
    } as grpc.MethodDefinition<unknown, unknown>;
  }
  return definition as grpc.ServiceDefinition;
}

function procedurePath(method: DescMethod): string {
  return `/${method.parent.typeName}/${method.name}`;
}

/** The grpc-js handlers that run a service's connect implementation. */
export function grpcJsImplementation(
  mounted: MountedService,
  options: GrpcJsAdapterOptions,
): grpc.UntypedServiceImplementation {
  const spec = createServiceImplSpec(mounted.service, mounted.impl);
  const signals = new CallSignals(options.shutdownSignal);
  const implementation: grpc.UntypedServiceImplementation = {};
  for (const method of mounted.service.methods) {
    const methodSpec = spec.methods[method.localName];
    implementation[method.localName] =
      methodSpec.kind === "unary" ? unaryHandler(methodSpec, options, signals) : streamHandler(methodSpec, options, signals);
  }
  return implementation;
}

type AnyCall = grpc.ServerUnaryCall<unknown, unknown> | grpc.ServerWritableStream<unknown, unknown> | grpc.ServerDuplexStream<unknown, unknown>;

/** Why a call's signal fires. One instance each: a reason is read, never changed. */
const CANCELED = new ConnectError("the call was canceled", Code.Canceled);
const ENDED = new ConnectError("the call has ended", Code.Canceled);
const timedOut = () => new ConnectError("the operation timed out", Code.DeadlineExceeded);

/** The call a request was made for, carried along when an interceptor copies the request. */
const CALL_OF = Symbol("native call");

/**
 * The calls in flight on one server, so that shutdown aborts each of them once, instead of every
 * call adding and removing a listener on the shutdown signal.
 */
class CallSignals {
  private readonly live = new Set<AbortController>();

  constructor(private readonly shutdown: AbortSignal) {
    shutdown.addEventListener("abort", () => {
      for (const controller of this.live) controller.abort(shutdown.reason);
    }, { once: true });
  }

  open(): AbortController {
    const controller = new AbortController();
    if (this.shutdown.aborted) controller.abort(this.shutdown.reason);
    else this.live.add(controller);
    return controller;
  }

  close(controller: AbortController): void {
    this.live.delete(controller);
  }
}

/**
 * One call on the native port, as connect's pieces see it: for a unary call it is at once the
 * request the interceptors get and the HandlerContext the handler gets, with what connect's own
 * invocation would put in them.
 *
 * What a call rarely needs is made when first read: its signal (an AbortController and its
 * listeners on cancel, deadline and shutdown), its request Headers (copied from the grpc-js
 * Metadata), its response header and trailer, its context values. A Lease that waits for no key
 * and needs no token reads none of them. Made late, they are the same: a signal made after the
 * client cancelled, after the deadline or after shutdown is made aborted with the same reason.
 *
 * The lazy fields are accessors on the prototype, which a spread (`{ ...req }`) does not copy:
 * an interceptor that passes on a copy of the request leaves them to this call (see contextOf).
 */
class NativeCall {
  readonly stream = false;
  readonly requestMethod = "POST";
  readonly protocolName = "grpc";
  readonly service: DescService;
  readonly method: DescMethod;
  readonly url: string;
  readonly [CALL_OF]: NativeCall;
  private controller: AbortController | undefined;
  private timer: NodeJS.Timeout | undefined;
  private requestHeaders: Headers | undefined;
  private responseHeaders: Headers | undefined;
  private responseTrailers: Headers | undefined;
  private contextValues_: ContextValues | undefined;
  /** Made with the signal: a call that never reads its signal listens for nothing. */
  private onCancel: (() => void) | undefined;

  constructor(
    table: MethodTable,
    /** The request message (unary calls). */
    readonly message: unknown,
    private readonly call: AnyCall,
    private readonly signals: CallSignals,
  ) {
    this.service = table.service;
    this.method = table.method;
    this.url = table.url;
    this[CALL_OF] = this;
  }

  /** Fires when the client cancels, at the deadline (DEADLINE_EXCEEDED, as on the main port) and at shutdown. */
  get signal(): AbortSignal {
    return (this.controller ??= this.openSignal()).signal;
  }

  get header(): Headers {
    return (this.requestHeaders ??= headersOf(this.call.metadata));
  }

  get requestHeader(): Headers {
    return this.header;
  }

  get responseHeader(): Headers {
    return (this.responseHeaders ??= new Headers());
  }

  get responseTrailer(): Headers {
    return (this.responseTrailers ??= new Headers());
  }

  get contextValues(): ContextValues {
    return (this.contextValues_ ??= createContextValues());
  }

  get values(): ContextValues {
    return this.contextValues;
  }

  timeoutMs(): number | undefined {
    const deadlineMs = deadlineOf(this.call);
    return Number.isFinite(deadlineMs) ? deadlineMs - Date.now() : undefined;
  }

  /** The response header and trailer as grpc-js Metadata, or undefined when nothing was set. */
  sentHeader(): grpc.Metadata | undefined {
    return metadataOrNothing(this.responseHeaders);
  }

  sentTrailer(): grpc.Metadata | undefined {
    return metadataOrNothing(this.responseTrailers);
  }

  /**
   * A plain HandlerContext for connect's stream invocation, which copies the context with a
   * spread (so it must not hold accessors) and reads every part of it anyway.
   */
  plainContext(): HandlerContext {
    return {
      service: this.service,
      method: this.method,
      signal: this.signal,
      timeoutMs: () => this.timeoutMs(),
      requestMethod: this.requestMethod,
      requestHeader: this.requestHeader,
      responseHeader: this.responseHeader,
      responseTrailer: this.responseTrailer,
      protocolName: this.protocolName,
      values: this.values,
      url: this.url,
    };
  }

  /** Releases the call's signal, if it was made; `abort`: fire it too (streams, whose handlers may still wait on it). */
  release(abort: boolean): void {
    const controller = this.controller;
    if (!controller) return;
    this.signals.close(controller);
    if (this.timer) clearTimeout(this.timer);
    if (this.onCancel) (this.call as grpc.ServerUnaryCall<unknown, unknown>).removeListener("cancelled", this.onCancel);
    if (abort && !controller.signal.aborted) controller.abort(ENDED);
  }

  private openSignal(): AbortController {
    const controller = this.signals.open();
    if (controller.signal.aborted) return controller;
    if (this.call.cancelled) {
      controller.abort(CANCELED);
      return controller;
    }
    this.onCancel = () => controller.abort(CANCELED);
    (this.call as grpc.ServerUnaryCall<unknown, unknown>).once("cancelled", this.onCancel);
    const deadlineMs = deadlineOf(this.call);
    if (Number.isFinite(deadlineMs)) {
      const remaining = deadlineMs - Date.now();
      if (remaining <= 0) controller.abort(timedOut());
      else this.timer = setTimeout(() => controller.abort(timedOut()), remaining);
    }
    return controller;
  }
}

function deadlineOf(call: AnyCall): number {
  const deadline = call.getDeadline();
  return deadline instanceof Date ? deadline.getTime() : deadline;
}

function metadataOrNothing(headers: Headers | undefined): grpc.Metadata | undefined {
  return headers === undefined || headers.keys().next().done ? undefined : metadataOf(headers);
}

/**
 * The HandlerContext for a request that went through the interceptors: the call itself, or,
 * when an interceptor passed on another request object, what connect's invocation makes of it
 * (that request's service, header, signal and values; the rest from the call).
 */
function contextOf(req: UnaryRequest): HandlerContext {
  if (req instanceof NativeCall) return req;
  const call = callOf(req);
  return {
    ...call.plainContext(),
    service: req.service,
    requestHeader: req.header ?? call.requestHeader,
    signal: req.signal ?? call.signal,
    values: req.contextValues ?? call.values,
  };
}

function callOf(req: UnaryRequest): NativeCall {
  const call = (req as Partial<Pick<NativeCall, typeof CALL_OF>>)[CALL_OF];
  if (!call) throw new Error("an interceptor passed on a request that is not from this call");
  return call;
}

/** Metadata as the HTTP headers connect hands to interceptors (binary values base64, as sent). */
function headersOf(metadata: grpc.Metadata): Headers {
  const headers = new Headers({ "content-type": "application/grpc+proto" });
  const map = metadata.getMap();
  for (const key in map) {
    const value = map[key];
    headers.set(key, typeof value === "string" ? value : value.toString("base64"));
  }
  return headers;
}

function metadataOf(headers: Headers): grpc.Metadata {
  const metadata = new grpc.Metadata();
  headers.forEach((value, key) => {
    if (key.endsWith("-bin")) metadata.set(key, Buffer.from(value, "base64"));
    else metadata.set(key, value);
  });
  return metadata;
}

/** What connect's gRPC protocol puts in the trailers for an error, as a grpc-js status. */
function statusOf(reason: unknown): Partial<grpc.StatusObject> {
  const error = ConnectError.from(reason);
  const trailer = setTrailerStatus(new Headers(), error);
  trailer.delete("grpc-status");
  trailer.delete("grpc-message");
  return { code: error.code as number as grpc.status, details: truncated(error.rawMessage, ERROR_MESSAGE_LIMIT_BYTES), metadata: metadataOf(trailer) };
}

/** What every call of one method shares, made once when the service is mounted. */
interface MethodTable {
  service: DescService;
  method: DescMethod;
  url: string;
}

function methodTable(spec: MethodImplSpec): MethodTable {
  return { service: spec.method.parent, method: spec.method, url: procedurePath(spec.method) };
}

/**
 * A unary response as connect's invocation makes one. Its header and trailer are the call's,
 * made when first read (by an interceptor or the handler), like the call's own.
 */
class NativeUnaryResponse {
  readonly stream = false;

  constructor(
    readonly message: unknown,
    private readonly call: NativeCall,
  ) {}

  get service(): DescService {
    return this.call.service;
  }

  get method(): DescMethod {
    return this.call.method;
  }

  get header(): Headers {
    return this.call.responseHeader;
  }

  get trailer(): Headers {
    return this.call.responseTrailer;
  }
}

/**
 * The interceptors wrap the handler once per method, not once per call as connect's own
 * invokeUnaryImplementation does: none of keypool's interceptors keeps state per wrapping.
 */
function unaryInvocation(spec: Extract<MethodImplSpec, { kind: "unary" }>, interceptors: Interceptor[]): (call: NativeCall) => Promise<UnaryResponse> {
  const output = spec.method.output;
  const handler = async (req: UnaryRequest): Promise<UnaryResponse> => {
    const ctx = contextOf(req);
    const message = create(output, await spec.impl(req.message as never, ctx));
    if (ctx instanceof NativeCall) return new NativeUnaryResponse(message, ctx) as unknown as UnaryResponse;
    return { stream: false, message, method: spec.method, service: req.service, header: ctx.responseHeader, trailer: ctx.responseTrailer } as UnaryResponse;
  };
  const invoke = interceptors.reduceRight<(req: UnaryRequest) => Promise<UnaryResponse>>(
    (next, interceptor) => interceptor(next as never) as (req: UnaryRequest) => Promise<UnaryResponse>,
    handler,
  );
  return (call) => {
    try {
      return invoke(call as unknown as UnaryRequest);
    } catch (err) {
      return Promise.reject(err);
    }
  };
}

function unaryHandler(spec: MethodImplSpec, options: GrpcJsAdapterOptions, signals: CallSignals): grpc.handleUnaryCall<unknown, unknown> {
  const table = methodTable(spec);
  const invoke = unaryInvocation(spec as Extract<MethodImplSpec, { kind: "unary" }>, options.interceptors);
  return (call, callback) => {
    if (call.request instanceof UndecodableRequest) return callback(statusOf(call.request.error));
    const native = new NativeCall(table, call.request, call, signals);
    invoke(native).then(
      (response) => {
        native.release(false);
        const header = response instanceof NativeUnaryResponse ? native.sentHeader() : metadataOrNothing(response.header);
        if (header) call.sendMetadata(header);
        callback(null, response.message, response instanceof NativeUnaryResponse ? native.sentTrailer() : metadataOrNothing(response.trailer));
      },
      (reason: unknown) => {
        native.release(false);
        callback(statusOf(reason));
      },
    );
  };
}

function sendResponseHeader(call: AnyCall, native: NativeCall): void {
  const header = native.sentHeader();
  if (header) call.sendMetadata(header);
}

/**
 * Server streams (WatchKeys, health Watch) and bidi streams (reflection). Like the main port
 * (src/server/node-handler.ts), the next message is made only once the previous one has been
 * handed to the connection, so a client that stops reading is held back by HTTP/2 flow control
 * and the watch hub coalesces what it has not sent.
 */
function streamHandler(
  spec: MethodImplSpec,
  options: GrpcJsAdapterOptions,
  signals: CallSignals,
): grpc.handleServerStreamingCall<unknown, unknown> | grpc.handleBidiStreamingCall<unknown, unknown> {
  const table = methodTable(spec);
  const streamSpec = spec as Extract<MethodImplSpec, { kind: "server_streaming" | "bidi_streaming" }>;
  const output = spec.method.output;
  // Streams reach this handler through the native listener's admission queue
  // (native-grpc-listener.ts admitStreamsFirst), a few per turn: it starts them at once.
  return startStream;

  function startStream(call: grpc.ServerWritableStream<unknown, unknown> | grpc.ServerDuplexStream<unknown, unknown>): void {
    const native = new NativeCall(table, undefined, call, signals);
    const ctx = native.plainContext();
    const input =
      spec.kind === "server_streaming"
        ? requestOf(call as grpc.ServerWritableStream<unknown, unknown>)
        : checked(requestsOf(call as grpc.ServerDuplexStream<unknown, unknown>));
    void (async () => {
      const response = await invokeStream(streamSpec, options.interceptors, ctx, input);
      copyHeaders(response.header, ctx.responseHeader);
      let headerSent = false;
      await writeEach(response.message[Symbol.asyncIterator](), ctx.signal, (message, done) => {
        if (!headerSent) {
          sendResponseHeader(call, native);
          headerSent = true;
        }
        // A pre-encoded message is already final (its bytes are what create() + toBinary would give).
        call.write(carriesEncoding(message) ? message : create(output, message as never), done);
      });
      copyHeaders(response.trailer, ctx.responseTrailer);
      if (!headerSent) sendResponseHeader(call, native);
      call.end(native.sentTrailer());
    })()
      .catch((reason: unknown) => {
        if (call.cancelled || call.destroyed) {
          options.onAbandoned?.(procedurePath(spec.method), reason);
          return;
        }
        call.emit("error", statusOf(reason));
      })
      .finally(() => native.release(true));
  }
}

/** A server stream's one request; one that did not decode fails the call as `checked` fails a bidi call. */
function requestOf(call: grpc.ServerWritableStream<unknown, unknown>): AsyncIterable<never> {
  const request: unknown = call.request;
  return request instanceof UndecodableRequest ? oneRequest(undefined, request.error) : oneRequest(request);
}

/**
 * A bidi call's requests, ending when the client half-closes. The iterator must not destroy the
 * call when the requests end (a Readable's default): its writable side still has to answer.
 */
function requestsOf(call: grpc.ServerDuplexStream<unknown, unknown>): AsyncIterable<unknown> {
  return { [Symbol.asyncIterator]: () => call.iterator({ destroyOnReturn: false }) };
}

async function* checked(requests: AsyncIterable<unknown>): AsyncIterable<never> {
  for await (const request of requests) {
    if (request instanceof UndecodableRequest) throw request.error;
    yield request as never;
  }
}
