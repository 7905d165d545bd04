/**
 * A minimal gRPC unary call over node:http2, sharing no code with the server's stack: it reads
 * grpc-status from the trailers itself. Used to wait for SERVING without any client-side
 * reconnect backoff (which would distort the start-up time) and to verify that Lease calls
 * really succeed, which h2load (HTTP statuses only) cannot tell.
 */
import * as http2 from "node:http2";
import { grpcFrame } from "./grpc-frame";

export interface RawReply {
  grpcStatus: number;
  grpcMessage: string;
  /** The response message (unframed), empty when none came. */
  message: Uint8Array;
}

export function connect(port: number): Promise<http2.ClientHttp2Session> {
  return new Promise((resolve, reject) => {
    const session = http2.connect(`http://127.0.0.1:${port}`);
    session.once("connect", () => {
      session.off("error", reject);
      session.on("error", () => undefined);
      resolve(session);
    });
    session.once("error", reject);
  });
}

export function unary(session: http2.ClientHttp2Session, method: string, request: Uint8Array, timeoutMs = 30_000): Promise<RawReply> {
  return new Promise((resolve, reject) => {
    const stream = session.request({
      ":method": "POST",
      ":path": method,
      "content-type": "application/grpc",
      te: "trailers",
    });
    const timer = setTimeout(() => {
      stream.close(http2.constants.NGHTTP2_CANCEL);
      reject(new Error(`${method}: no answer in ${timeoutMs} ms`));
    }, timeoutMs);
    const chunks: Buffer[] = [];
    let headers: http2.IncomingHttpHeaders = {};
    let trailers: http2.IncomingHttpHeaders = {};
    stream.on("response", (h) => (headers = h));
    stream.on("trailers", (t) => (trailers = t));
    stream.on("data", (d: Buffer) => chunks.push(d));
    stream.on("error", (e) => {
      clearTimeout(timer);
      reject(e);
    });
    stream.on("end", () => {
      clearTimeout(timer);
      // A trailers-only response carries grpc-status in the headers.
      const status = trailers["grpc-status"] ?? headers["grpc-status"];
      const body = Buffer.concat(chunks);
      const length = body.length >= 5 ? body.readUInt32BE(1) : 0;
      resolve({
        grpcStatus: status === undefined ? -1 : Number(status),
        grpcMessage: decodeURIComponent(String(trailers["grpc-message"] ?? headers["grpc-message"] ?? "")),
        message: body.subarray(5, 5 + length),
      });
    });
    stream.end(grpcFrame(request));
  });
}
