/**
 * Mounts connect service implementations on a @grpc/grpc-js server, so that the native gRPC port
 * runs the very handlers and interceptors the main port runs (src/server/routes.ts), not a copy.
 *
 * The grpc-js service definition is built from the generated descriptors: each method's path,
 * kind, and protobuf-es toBinary/fromBinary as its codec. Each call gets a connect HandlerContext
 * (request headers from the metadata, the deadline, a signal that fires when the client cancels
 * or the server shuts down) and goes through connect's own invocation with the same interceptor
 * chain as the main port: error mapping, shutdown gate, request log, access control.
 *
 * Errors leave as connect would send them on gRPC: the same code, the same message, and the same
 * grpc-status-details-bin (google.rpc.Status with its details, such as RetryInfo).
 */
import { fromBinary, toBinary, type DescMessage, type DescMethod } from "@bufbuild/protobuf";
import * as grpc from "@grpc/grpc-js";
import {
  Code,
  ConnectError,
  createContextValues,
  createServiceImplSpec,
  type HandlerContext,
  type Interceptor,
  type MethodImplSpec,
} from "@connectrpc/connect";
import { createAsyncIterable, invokeUnaryImplementation, transformInvokeImplementation } from "@connectrpc/connect/protocol";
import { setTrailerStatus } from "@connectrpc/connect/protocol-grpc";
import { truncated } from "../domain/echo";
import { ERROR_MESSAGE_LIMIT_BYTES } from "../transport/client-mistakes";
import type { MountedService } from "./routes";

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

function decoder(schema: DescMessage): (bytes: Buffer) => unknown {
  return (bytes) => {
    try {
      return fromBinary(schema, bytes);
    } catch (err) {
      const message = err instanceof Error ? err.message : String(err);
      return new UndecodableRequest(new ConnectError(`parse binary: ${message}`, Code.InvalidArgument));
    }
  };
}

function encoder(schema: DescMessage): (message: never) => Buffer {
  return (message) => {
    const bytes = toBinary(schema, message);
    return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  };
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
      responseSerialize: encoder(method.output),
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

interface CallContext {
  ctx: HandlerContext;
  /** Releases the call's signal; `abort`: fire it too (streams, whose handlers may still wait on it). */
  done(abort: boolean): void;
}

/**
 * A HandlerContext as connect-node makes one for a gRPC call: its signal fires when the client
 * cancels, at the deadline (DEADLINE_EXCEEDED, as on the main port) and at shutdown. Built here
 * rather than with connect's createHandlerContext, which links three signals per call and aborts
 * one (with a fresh DOMException) when every call ends: on the native port that was a quarter of
 * the server's time for a Health/Check.
 */
function contextFor(spec: MethodImplSpec, call: AnyCall, signals: CallSignals): CallContext {
  const controller = signals.open();
  const emitter = call as grpc.ServerUnaryCall<unknown, unknown>;
  const onCancel = () => controller.abort(CANCELED);
  if (call.cancelled) onCancel();
  else emitter.once("cancelled", onCancel);
  const deadline = call.getDeadline();
  const deadlineMs = deadline instanceof Date ? deadline.getTime() : deadline;
  let timer: NodeJS.Timeout | undefined;
  if (Number.isFinite(deadlineMs)) {
    const remaining = deadlineMs - Date.now();
    if (remaining <= 0) controller.abort(timedOut());
    else timer = setTimeout(() => controller.abort(timedOut()), remaining);
  }
  const ctx: HandlerContext = {
    service: spec.method.parent,
    method: spec.method,
    signal: controller.signal,
    timeoutMs: Number.isFinite(deadlineMs) ? () => deadlineMs - Date.now() : () => undefined,
    requestMethod: "POST",
    requestHeader: headersOf(call.metadata),
    responseHeader: new Headers(),
    responseTrailer: new Headers(),
    protocolName: "grpc",
    values: createContextValues(),
    url: procedurePath(spec.method),
  };
  return {
    ctx,
    done(abort) {
      signals.close(controller);
      if (timer) clearTimeout(timer);
      emitter.removeListener("cancelled", onCancel);
      if (abort && !controller.signal.aborted) controller.abort(ENDED);
    },
  };
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

function unaryHandler(spec: MethodImplSpec, options: GrpcJsAdapterOptions, signals: CallSignals): grpc.handleUnaryCall<unknown, unknown> {
  const unarySpec = spec as Extract<MethodImplSpec, { kind: "unary" }>;
  return (call, callback) => {
    if (call.request instanceof UndecodableRequest) return callback(statusOf(call.request.error));
    const { ctx, done } = contextFor(spec, call, signals);
    invokeUnaryImplementation(unarySpec, ctx, call.request as never, options.interceptors).then(
      (response) => {
        done(false);
        sendResponseHeader(call, ctx);
        callback(null, response, ctx.responseTrailer.keys().next().done ? undefined : metadataOf(ctx.responseTrailer));
      },
      (reason: unknown) => {
        done(false);
        callback(statusOf(reason));
      },
    );
  };
}

function sendResponseHeader(call: AnyCall, ctx: HandlerContext): void {
  if (!ctx.responseHeader.keys().next().done) call.sendMetadata(metadataOf(ctx.responseHeader));
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
  return (call: grpc.ServerWritableStream<unknown, unknown> | grpc.ServerDuplexStream<unknown, unknown>) => {
    const { ctx, done } = contextFor(spec, call, signals);
    const input =
      spec.kind === "server_streaming"
        ? createAsyncIterable([(call as grpc.ServerWritableStream<unknown, unknown>).request])
        : requestsOf(call as grpc.ServerDuplexStream<unknown, unknown>);
    const output = transformInvokeImplementation(spec, ctx, options.interceptors)(checked(input));
    void (async () => {
      let headerSent = false;
      for await (const message of output) {
        if (!headerSent) {
          sendResponseHeader(call, ctx);
          headerSent = true;
        }
        await written(call, message, ctx.signal);
      }
      if (!headerSent) sendResponseHeader(call, ctx);
      call.end(ctx.responseTrailer.keys().next().done ? undefined : metadataOf(ctx.responseTrailer));
    })()
      .catch((reason: unknown) => {
        if (call.cancelled || call.destroyed) {
          options.onAbandoned?.(procedurePath(spec.method), reason);
          return;
        }
        call.emit("error", statusOf(reason));
      })
      .finally(() => done(true));
  };
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

/** Resolves once the message has left for the connection, or rejects when the call ends first. */
function written(call: grpc.ServerWritableStream<unknown, unknown> | grpc.ServerDuplexStream<unknown, unknown>, message: unknown, signal: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal.aborted) return reject(signal.reason);
    const onAbort = () => reject(signal.reason);
    signal.addEventListener("abort", onAbort, { once: true });
    call.write(message, (err?: Error | null) => {
      signal.removeEventListener("abort", onAbort);
      if (err) reject(err);
      else resolve();
    });
  });
}
