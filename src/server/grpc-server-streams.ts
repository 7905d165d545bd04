/**
 * gRPC server streams (WatchKeys, Health/Watch) on the main port's HTTP/2 side, run without
 * node's HTTP/2 compatibility request and response and without connect-node's universal
 * pipeline (an async generator per stage for the request and for the response). A dashboard's
 * stream stays open for hours, and each of those objects stays with it: this path holds the
 * stream, the service's own generator, its invocation through the interceptors (the same as
 * every other call's, in src/server/invoke-stream.ts, shared with the native port) and one loop
 * that writes, as the native port does (grpc-js-adapter.ts).
 *
 * It takes only what it answers exactly as connect-node would: POST, gRPC with protobuf, no
 * request compression, no grpc-timeout, no Expect, and a body of one plain message that parses.
 * Anything else — a body that is empty, has two messages, a compressed or unknown flag, or does
 * not parse — goes to connect's own handler for the method with the bytes read so far replayed,
 * so that every error a client can provoke is connect's (and reclassifyClientMistakes') answer.
 * Responses are compressed as connect compresses them (the first encoding the client accepts
 * that the server knows, messages of compressMinBytes and more), errors go into the trailers
 * with connect's status and details, and the next message is made only once the previous one
 * has left (node-handler.ts writeOneMessageAtATime says why).
 */
import * as http2 from "node:http2";
import { create, type BinaryReadOptions, type BinaryWriteOptions, type DescMethod } from "@bufbuild/protobuf";
import {
  Code,
  ConnectError,
  createHandlerContext,
  createServiceImplSpec,
  type Interceptor,
  type MethodImplSpec,
} from "@connectrpc/connect";
import {
  compressedFlag,
  compressionNegotiate,
  createMethodSerializationLookup,
  encodeEnvelope,
  type Compression,
  type UniversalHandler,
  type UniversalServerRequest,
  type UniversalServerResponse,
} from "@connectrpc/connect/protocol";
import { contentTypeProto, grpcStatusOk, setTrailerStatus } from "@connectrpc/connect/protocol-grpc";
import { fixGrpcStatus } from "../transport/client-mistakes";
import { encodingOf } from "../transport/pre-encoded";
import { copyHeaders, invokeStream, oneRequest } from "./invoke-stream";
import type { Http2StreamTaker } from "./listener";
import type { MountedService } from "./routes";
import type { StreamAdmission } from "./stream-admission";


export interface GrpcServerStreamsOptions {
  services: MountedService[];
  /** The main port's interceptors, as given to its connect router. */
  interceptors: Interceptor[];
  shutdownSignal: AbortSignal;
  /** The router's compression (connect's acceptCompression), in the same order. */
  acceptCompression: Compression[];
  /** connect's default: messages of at least this many bytes are compressed. */
  compressMinBytes?: number;
  readMaxBytes?: number;
  binaryOptions?: Partial<BinaryReadOptions & BinaryWriteOptions>;
  /** connect's handler (as the router wraps it) for a path: answers what this path does not take. */
  connectHandler: (path: string) => UniversalHandler | undefined;
  admission?: StreamAdmission;
  /** A response that could not be completed because the client went away. */
  onAbandoned: (procedure: string, reason: unknown) => void;
}

/** Matches what connect's gRPC handler reads as binary protobuf (its content-type parser). */
const GRPC_PROTO = /^application\/grpc(\+proto)?$/i;
/** Bytes read before a body is handed to connect whole instead: one WatchKeys or Health request is a few bytes. */
const BODY_LOOK_BYTES = 64 * 1024;
const COMPRESS_MIN_BYTES = 1024;

interface StreamMethod {
  spec: Extract<MethodImplSpec, { kind: "server_streaming" }>;
  serialization: ReturnType<typeof createMethodSerializationLookup>;
  procedure: string;
}

export function createGrpcServerStreams(options: GrpcServerStreamsOptions): Http2StreamTaker {
  const methods = new Map<string, StreamMethod>();
  for (const mounted of options.services) {
    const spec = createServiceImplSpec(mounted.service, mounted.impl);
    for (const method of mounted.service.methods) {
      const methodSpec = spec.methods[method.localName];
      if (methodSpec.kind !== "server_streaming") continue;
      const path = procedurePath(method);
      methods.set(path, {
        spec: methodSpec,
        serialization: createMethodSerializationLookup(method, options.binaryOptions, undefined, { writeMaxBytes: 0xffffffff, readMaxBytes: 0xffffffff }),
        procedure: path.slice(1),
      });
    }
  }
  const readMaxBytes = options.readMaxBytes ?? 0xffffffff;
  const lookBytes = Math.min(readMaxBytes, BODY_LOOK_BYTES) + 5;
  const compressMinBytes = options.compressMinBytes ?? COMPRESS_MIN_BYTES;

  return (stream, headers) => {
    if (headers[":method"] !== "POST") return false;
    const path = (headers[":path"] ?? "").split("?", 1)[0]!;
    const method = methods.get(path);
    if (!method) return false;
    const contentType = headers["content-type"];
    if (typeof contentType !== "string" || !GRPC_PROTO.test(contentType)) return false;
    const encoding = headers["grpc-encoding"];
    if ((encoding !== undefined && encoding !== "identity") || headers["grpc-timeout"] !== undefined || headers.expect !== undefined) return false;

    // A reset or a lost connection emits 'error' on the stream; its end is handled where it is
    // written and read (node's compatibility layer listens the same way for the streams it serves).
    stream.on("error", ignore);
    const start = () => void serve(stream, headers, path, method).catch((reason) => options.onAbandoned(method.procedure, reason));
    if (!options.admission) start();
    else if (!options.admission.admit(start, () => stream.destroyed)) stream.close(http2.constants.NGHTTP2_REFUSED_STREAM);
    return true;
  };

  async function serve(stream: http2.ServerHttp2Stream, headers: http2.IncomingHttpHeaders, path: string, method: StreamMethod): Promise<void> {
    const body = await readBody(stream, lookBytes);
    const message = body.complete ? oneMessage(body.chunks, readMaxBytes, method) : undefined;
    const requestSignal = closeSignal(stream);
    if (message === undefined) {
      const handler = options.connectHandler(path);
      if (!handler) throw new Error(`no connect handler for ${path}`);
      const req: UniversalServerRequest = {
        httpVersion: "2.0",
        method: "POST",
        url: requestUrl(stream, headers, path),
        header: webHeaders(headers),
        body: replay(body.chunks, body.complete ? undefined : stream),
        signal: requestSignal,
      };
      await writeUniversal(stream, await handler(req));
      return;
    }
    const header = webHeaders(headers);
    const compression = compressionNegotiate(options.acceptCompression, null, header.get("grpc-accept-encoding"), "grpc-accept-encoding").response;
    const context = createHandlerContext({
      ...method.spec,
      service: method.spec.method.parent,
      requestMethod: "POST",
      protocolName: "grpc",
      timeoutMs: undefined,
      shutdownSignal: options.shutdownSignal,
      requestSignal,
      requestHeader: header,
      url: requestUrl(stream, headers, path),
      responseHeader: { "content-type": contentTypeProto, ...(compression ? { "grpc-encoding": compression.name } : {}) },
      responseTrailer: { "grpc-status": grpcStatusOk },
    });
    const serialize = method.serialization.getO(true);
    const output = method.spec.method.output;
    let responded = false;
    try {
      const response = await invokeStream(method.spec, options.interceptors, context, oneRequest(message));
      copyHeaders(response.header, context.responseHeader);
      for await (const reply of response.message) {
        // A WatchKeys message carries its encoding (src/transport/pre-encoded.ts): the same bytes.
        const parts = encodingOf(reply) ?? [serialize.serialize(create(output, reply as never))];
        const length = byteLength(parts);
        if (!responded) {
          respond(stream, context.responseHeader);
          responded = true;
        }
        if (compression && length >= compressMinBytes) {
          const joined = parts.length === 1 ? parts[0]! : Buffer.concat(parts);
          await written(stream, [encodeEnvelope(compressedFlag, await compression.compress(joined))], context.signal);
        } else {
          await written(stream, [envelopeHeader(length), ...parts], context.signal);
        }
      }
      copyHeaders(response.trailer, context.responseTrailer);
      context.abort();
    } catch (reason) {
      context.abort(reason);
      if (stream.destroyed || stream.closed) {
        options.onAbandoned(method.procedure, reason);
        return;
      }
      setTrailerStatus(context.responseTrailer, reason instanceof ConnectError ? reason : new ConnectError("internal error", Code.Internal, undefined, undefined, reason));
    }
    if (stream.destroyed || stream.closed) return;
    fixGrpcStatus(context.responseTrailer);
    if (!responded) respond(stream, context.responseHeader);
    endWithTrailers(stream, context.responseTrailer);
  }
}

function ignore(): void {}

function procedurePath(method: DescMethod): string {
  return `/${method.parent.typeName}/${method.name}`;
}

/** The request body: every chunk, or as many as reach `limit` bytes (`complete` false; the rest is still on the stream). */
function readBody(stream: http2.ServerHttp2Stream, limit: number): Promise<{ chunks: Buffer[]; complete: boolean }> {
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    // A request without a body (END_STREAM on its HEADERS) may have ended before anyone read it.
    if (stream.readableEnded) return resolve({ chunks, complete: true });
    if (stream.destroyed) return resolve({ chunks, complete: false });
    let bytes = 0;
    const done = (complete: boolean) => {
      stream.off("data", onData);
      stream.off("end", onEnd);
      stream.off("close", onClose);
      if (!complete) stream.pause();
      resolve({ chunks, complete });
    };
    const onData = (chunk: Buffer) => {
      chunks.push(chunk);
      bytes += chunk.length;
      if (bytes >= limit) done(false);
    };
    const onEnd = () => done(true);
    // Reset before its body ended: connect's handler sees the same stream and its signal aborted.
    const onClose = () => done(false);
    stream.on("data", onData);
    stream.once("end", onEnd);
    stream.once("close", onClose);
  });
}

/** The one request message of a body that is exactly one uncompressed, parseable message; else undefined. */
function oneMessage(chunks: Buffer[], readMaxBytes: number, method: StreamMethod): unknown {
  const body = chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks);
  if (body.length < 5 || body[0] !== 0) return undefined;
  const length = body.readUInt32BE(1);
  if (length > readMaxBytes || body.length !== 5 + length) return undefined;
  try {
    return method.serialization.getI(true).parse(body.subarray(5));
  } catch {
    return undefined;
  }
}

async function* replay(chunks: Buffer[], rest: AsyncIterable<Buffer> | undefined): AsyncIterable<Uint8Array> {
  yield* chunks;
  if (rest) yield* rest;
}

/** Aborts when the stream closes: with connect's CANCELED for a reset, plainly when it ended. */
function closeSignal(stream: http2.ServerHttp2Stream): AbortSignal {
  const controller = new AbortController();
  const onClose = () => {
    const code = stream.rstCode;
    if (code === undefined || code === http2.constants.NGHTTP2_NO_ERROR) controller.abort();
    else controller.abort(new ConnectError(`http/2 stream closed with error code ${code}`, Code.Canceled));
  };
  if (stream.closed) onClose();
  else stream.once("close", onClose);
  return controller.signal;
}

function requestUrl(stream: http2.ServerHttp2Stream, headers: http2.IncomingHttpHeaders, path: string): string {
  const encrypted = Boolean((stream.session?.socket as { encrypted?: boolean } | undefined)?.encrypted);
  return new URL(path, `${encrypted ? "https" : "http"}://${headers[":authority"] ?? headers.host ?? "localhost"}`).toString();
}

/** The request headers as connect's handlers see them (no pseudo-headers). */
function webHeaders(headers: http2.IncomingHttpHeaders): Headers {
  const out = new Headers();
  for (const key in headers) {
    if (key.startsWith(":")) continue;
    const value = headers[key];
    if (value === undefined) continue;
    if (Array.isArray(value)) for (const v of value) out.append(key, v);
    else out.append(key, value);
  }
  return out;
}

function nodeHeaders(headers: Headers): http2.OutgoingHttpHeaders {
  const out: http2.OutgoingHttpHeaders = {};
  headers.forEach((value, key) => {
    out[key] = value;
  });
  return out;
}

function respond(stream: http2.ServerHttp2Stream, header: Headers): void {
  stream.respond({ ":status": 200, ...nodeHeaders(header) }, { waitForTrailers: true });
}

function endWithTrailers(stream: http2.ServerHttp2Stream, trailer: Headers): void {
  stream.once("wantTrailers", () => stream.sendTrailers(nodeHeaders(trailer)));
  stream.end();
}

function byteLength(parts: readonly Uint8Array[]): number {
  let length = 0;
  for (const part of parts) length += part.byteLength;
  return length;
}

/** A gRPC message's envelope before its bytes: no flags, then the length (big-endian). */
function envelopeHeader(length: number): Uint8Array {
  const header = new Uint8Array(5);
  new DataView(header.buffer).setUint32(1, length);
  return header;
}

/**
 * Writes the chunks as one message, each as it is (a body shared by many streams is not copied
 * into each: a stream whose client does not read holds a reference to it, not a copy); resolves
 * once they have left for the connection, rejects when the call ends first.
 */
function written(stream: http2.ServerHttp2Stream, chunks: readonly Uint8Array[], signal: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal.aborted) return reject(signal.reason ?? new ConnectError("the call has ended", Code.Canceled));
    const onAbort = () => reject(signal.reason ?? new ConnectError("the call has ended", Code.Canceled));
    signal.addEventListener("abort", onAbort, { once: true });
    // Corked, the chunks reach HTTP/2 in one write: they fill DATA frames as one run of bytes.
    stream.cork();
    for (let i = 0; i < chunks.length - 1; i++) stream.write(chunks[i]);
    stream.write(chunks[chunks.length - 1], (err) => {
      signal.removeEventListener("abort", onAbort);
      if (err) reject(err);
      else resolve();
    });
    stream.uncork();
  });
}

/**
 * connect's answer on the raw stream, as connect-node's universalResponseToNodeResponse writes it
 * on node's compatibility response: headers after the first body chunk (or at the end), each
 * chunk written before the next is read, then the trailers.
 */
async function writeUniversal(stream: http2.ServerHttp2Stream, res: UniversalServerResponse): Promise<void> {
  const it = res.body?.[Symbol.asyncIterator]();
  let responded = false;
  const head = () => {
    if (responded || stream.destroyed || stream.closed) return;
    responded = true;
    if (res.trailer) stream.respond({ ":status": res.status, ...nodeHeaders(res.header ?? new Headers()) }, { waitForTrailers: true });
    else stream.respond({ ":status": res.status, ...nodeHeaders(res.header ?? new Headers()) });
  };
  try {
    if (it) {
      for (let chunk = await it.next(); chunk.done !== true; chunk = await it.next()) {
        head();
        try {
          await new Promise<void>((resolve, reject) => stream.write(chunk.value, (err) => (err ? reject(err) : resolve())));
        } catch (err) {
          await it.throw?.(err).catch(() => undefined);
          throw err;
        }
      }
    }
    if (stream.destroyed || stream.closed) return;
    head();
    if (res.trailer) endWithTrailers(stream, res.trailer);
    else stream.end();
  } finally {
    await it?.return?.().catch(() => undefined);
  }
}
