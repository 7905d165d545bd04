/**
 * Talking to the server below any gRPC library, to send what a well-behaved client never would:
 * hand-made gRPC frames (lying lengths, truncated, oversized), arbitrary content types, and raw
 * bytes straight onto the TCP port.
 */
import * as http2 from "node:http2";
import * as net from "node:net";

/** A gRPC length-prefixed message: flag byte, 4-byte big-endian length, payload. */
export function grpcFrame(payload: Uint8Array, opts: { declaredLength?: number; compressed?: boolean } = {}): Buffer {
  const head = Buffer.alloc(5);
  head.writeUInt8(opts.compressed ? 1 : 0, 0);
  head.writeUInt32BE(opts.declaredLength ?? payload.length, 1);
  return Buffer.concat([head, Buffer.from(payload)]);
}

export interface RawResponse {
  httpStatus: number;
  headers: http2.IncomingHttpHeaders;
  trailers: http2.IncomingHttpHeaders;
  body: Buffer;
  /** grpc-status from trailers (or headers, for trailers-only answers); undefined when absent. */
  grpcStatus?: number;
  grpcMessage?: string;
}

/**
 * One HTTP/2 request with the given headers and body, on its own connection. Resolves with
 * whatever came back; rejects only when the connection itself failed.
 */
export function rawH2Request(
  port: number,
  path: string,
  body: Buffer,
  headers: http2.OutgoingHttpHeaders = {},
  timeoutMs = 5000,
): Promise<RawResponse> {
  return new Promise((resolve, reject) => {
    const session = http2.connect(`http://127.0.0.1:${port}`);
    const timer = setTimeout(() => {
      session.destroy();
      reject(new Error(`no answer within ${timeoutMs} ms for ${path}`));
    }, timeoutMs);
    session.on("error", (err) => {
      clearTimeout(timer);
      reject(err);
    });
    const req = session.request({
      ":method": "POST",
      ":path": path,
      "content-type": "application/grpc",
      te: "trailers",
      ...headers,
    });
    const chunks: Buffer[] = [];
    let responseHeaders: http2.IncomingHttpHeaders = {};
    let trailers: http2.IncomingHttpHeaders = {};
    req.on("response", (h) => (responseHeaders = h));
    req.on("trailers", (t) => (trailers = t));
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("error", () => undefined); // a reset stream still resolves, from what arrived
    // Resolve once the answer is complete (or the stream closed): a server that answers early
    // (an error) may stop reading the request, and the rest of a large body never drains.
    let settled = false;
    const finish = () => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      if (!req.closed) req.close(http2.constants.NGHTTP2_CANCEL);
      session.close();
      const status = trailers["grpc-status"] ?? responseHeaders["grpc-status"];
      const message = trailers["grpc-message"] ?? responseHeaders["grpc-message"];
      resolve({
        httpStatus: Number(responseHeaders[":status"] ?? 0),
        headers: responseHeaders,
        trailers,
        body: Buffer.concat(chunks),
        grpcStatus: status === undefined ? undefined : Number(status),
        grpcMessage: message === undefined ? undefined : decodeURIComponent(String(message)),
      });
    };
    req.on("end", finish);
    req.on("close", finish);
    req.end(body);
  });
}

/** An HTTP/1.1 request (for Connect and wrong content types) with a raw body. */
export async function rawH1Request(
  port: number,
  path: string,
  body: Buffer,
  headers: Record<string, string>,
): Promise<{ status: number; headers: Headers; body: Buffer }> {
  const res = await fetch(`http://127.0.0.1:${port}${path}`, { method: "POST", headers, body });
  return { status: res.status, headers: res.headers, body: Buffer.from(await res.arrayBuffer()) };
}

/**
 * Writes `bytes` onto a fresh TCP connection and waits until the server closes it or `waitMs`
 * passes; then closes it. Resolves with what the server answered.
 */
export function sendRawBytes(port: number, bytes: Buffer, waitMs = 300): Promise<Buffer> {
  return new Promise((resolve) => {
    const socket = net.connect(port, "127.0.0.1");
    const chunks: Buffer[] = [];
    const done = () => {
      clearTimeout(timer);
      socket.destroy();
      resolve(Buffer.concat(chunks));
    };
    const timer = setTimeout(done, waitMs);
    socket.on("connect", () => socket.write(bytes));
    socket.on("data", (c) => chunks.push(c));
    socket.on("error", done);
    socket.on("close", done);
  });
}

/** The grpc-status codes a client's own mistake may never produce. */
export const SERVER_FAULT_CODES = new Set([2 /* UNKNOWN */, 13 /* INTERNAL */]);

/** The HTTP/2 client connection preface. */
export const HTTP2_PREFACE_BYTES = Buffer.from("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", "latin1");
