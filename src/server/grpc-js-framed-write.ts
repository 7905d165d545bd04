/**
 * Writes a server stream's pre-encoded message (src/transport/pre-encoded.ts) on the native port
 * straight to the call's HTTP/2 stream, as one gRPC frame, instead of through grpc-js's object
 * Writable, its call's sendMessage and its serializer: a WatchKeys fan-out sends thousands of
 * messages a second, and those layers cost a Writable write, two copies of the message and a
 * few closures each, for bytes that are already final.
 *
 * What it does is what @grpc/grpc-js 1.14's BaseServerInterceptingCall.sendMessage does with the
 * bytes its serializer returns (build/src/server-interceptors.js), step for step: nothing once the
 * call is cancelled (checkCancelled; the call's signal then settles the write), the frame (a zero
 * compression byte, the length as 32 bits big-endian, the message), one write to the HTTP/2
 * stream, and on a write error the same INTERNAL status through the call's own sendStatus (which
 * keypool's status interceptor rewrites, src/server/native-grpc-listener.ts). It relies on these
 * parts of grpc-js's call, checked before every message, and takes grpc-js's own path (`null`)
 * whenever one of them is not as expected:
 *
 * - the ServerWritableStream / ServerDuplexStream keeps its call as `call`, and that call is a
 *   BaseServerInterceptingCall (keypool's one grpc-js interceptor returns the call itself), whose
 *   `stream` is the HTTP/2 stream;
 * - the response headers are sent (`metadataSent`): the first message, which sends them, always
 *   goes grpc-js's way;
 * - no send-size limit (`maxSendMessageSize` -1, as the native listener sets it), no call event
 *   tracker (channelz off, as the native listener sets it), the `server_call` tracer off (its
 *   "sent data frame" line is grpc-js's to write);
 * - the stream Writable holds nothing queued and is not ending (the adapter writes one message
 *   at a time and ends the call only after its last write's callback).
 *
 * Status, trailers, cancellation, deadlines and flow control stay grpc-js's and node's: the frame
 * goes through the same HTTP/2 stream write, whose callback (when the connection has taken it)
 * is what lets the adapter make the next message.
 */
import type * as http2 from "node:http2";
import * as grpc from "@grpc/grpc-js";

/** The parts of grpc-js's call this module reads (see above). */
interface BaseCallParts {
  stream: http2.ServerHttp2Stream;
  metadataSent: boolean;
  maxSendMessageSize: number;
  callEventTracker: unknown;
  checkCancelled(): boolean;
  sendStatus(status: grpc.StatusObject): void;
}

interface GrpcJsInternals {
  BaseServerInterceptingCall: new (...args: never[]) => BaseCallParts;
  isTracerEnabled: (tracer: string) => boolean;
  sendErrorDetails: boolean;
}

function loadInternals(): GrpcJsInternals | null {
  try {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const interceptors = require("@grpc/grpc-js/build/src/server-interceptors") as { BaseServerInterceptingCall?: unknown };
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const logging = require("@grpc/grpc-js/build/src/logging") as { isTracerEnabled?: unknown };
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const environment = require("@grpc/grpc-js/build/src/environment") as { GRPC_NODE_DEBUG_SEND_ERROR_DETAILS?: unknown };
    const base = interceptors.BaseServerInterceptingCall;
    const isTracerEnabled = logging.isTracerEnabled;
    if (typeof base !== "function" || typeof isTracerEnabled !== "function") return null;
    const proto = (base as { prototype: Record<string, unknown> }).prototype;
    if (typeof proto.checkCancelled !== "function" || typeof proto.sendStatus !== "function") return null;
    return {
      BaseServerInterceptingCall: base as GrpcJsInternals["BaseServerInterceptingCall"],
      isTracerEnabled: isTracerEnabled as GrpcJsInternals["isTracerEnabled"],
      sendErrorDetails: environment.GRPC_NODE_DEBUG_SEND_ERROR_DETAILS === true,
    };
  } catch {
    return null;
  }
}

const internals = loadInternals();

/** One gRPC frame: no compression, the length, then the parts one after the other. */
export function grpcFrame(parts: readonly Uint8Array[]): Buffer {
  let length = 0;
  for (const part of parts) length += part.length;
  const frame = Buffer.allocUnsafe(5 + length);
  frame[0] = 0;
  frame.writeUInt32BE(length, 1);
  let at = 5;
  for (const part of parts) {
    frame.set(part, at);
    at += part.length;
  }
  return frame;
}

type StreamCall = grpc.ServerWritableStream<unknown, unknown> | grpc.ServerDuplexStream<unknown, unknown>;

/**
 * The writer of framed messages for one call, or null when this grpc-js does not have the shape
 * described above (then every message takes grpc-js's path).
 */
export function framedWriter(call: StreamCall): FramedWriter | null {
  if (!internals) return null;
  const base = (call as unknown as { call?: unknown }).call;
  if (!(base instanceof internals.BaseServerInterceptingCall)) return null;
  if (typeof base.stream?.write !== "function") return null;
  return new FramedWriter(call, base, internals);
}

export class FramedWriter {
  constructor(
    private readonly call: StreamCall,
    private readonly base: BaseCallParts,
    private readonly grpcJs: GrpcJsInternals,
  ) {}

  /**
   * Writes the message's parts as one frame and returns true, or returns false without writing
   * when this message must take grpc-js's path. `written` is called as grpc-js's write callback
   * would be: once the HTTP/2 stream has taken the frame, never when the call is cancelled or the
   * write fails.
   */
  write(parts: readonly Uint8Array[], written: () => void): boolean {
    const base = this.base;
    if (
      !base.metadataSent ||
      base.maxSendMessageSize !== -1 ||
      base.callEventTracker ||
      this.call.writableLength !== 0 ||
      this.call.writableEnded ||
      this.grpcJs.isTracerEnabled("server_call")
    ) {
      return false;
    }
    if (base.checkCancelled()) return true;
    base.stream.write(grpcFrame(parts), (error?: Error | null) => {
      if (error) {
        base.sendStatus({
          code: grpc.status.INTERNAL,
          details: this.grpcJs.sendErrorDetails ? `Error writing message: ${error.message}` : "Internal server error",
          metadata: null as unknown as grpc.Metadata,
        });
        return;
      }
      written();
    });
    return true;
  }
}
