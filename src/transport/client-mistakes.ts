/**
 * connect-node answers INTERNAL when a request message does not parse (invalid UTF-8 in a string
 * field, a truncated message, an illegal tag) or carries a compressed flag without an encoding.
 * Those are the client's mistakes, and INTERNAL would tell it — and every alert on server
 * faults — that keypool is broken. This wrapper rewrites exactly those answers to
 * INVALID_ARGUMENT, for every protocol (gRPC trailers, gRPC-web trailer frames, Connect unary
 * JSON errors, Connect end-stream messages), and leaves every other answer untouched.
 *
 * On gRPC it also spells grpc-message the way the gRPC spec does (grpcPercentEncode below).
 *
 * Use: `connectNodeAdapter({ routes: reclassifyClientMistakes(routes), ... })`.
 */
import type { ConnectRouter } from "@connectrpc/connect";
import type { UniversalHandler, UniversalServerResponse } from "@connectrpc/connect/protocol";

/**
 * The messages connect gives to request-decoding failures it labels INTERNAL. The server only
 * ever decompresses requests, so a failed decompression is the client's too (zlib errors other
 * than Z_DATA_ERROR, such as a truncated gzip stream, come out as INTERNAL).
 */
const CLIENT_MISTAKE = /^(parse binary: |received compressed envelope|decompression failed$)/;

const GRPC_INTERNAL = "13";
const GRPC_INVALID_ARGUMENT = "3";
const GRPC_WEB_TRAILER_FLAG = 0x80;
const CONNECT_END_STREAM_FLAG = 0x02;
const COMPRESSED_FLAG = 0x01;

export function reclassifyClientMistakes(routes: (router: ConnectRouter) => void): (router: ConnectRouter) => void {
  return (router) => {
    routes(router);
    const handlers = router.handlers as UniversalHandler[];
    for (let i = 0; i < handlers.length; i++) handlers[i] = wrap(handlers[i]);
  };
}

function wrap(handler: UniversalHandler): UniversalHandler {
  const wrapped = async (req: Parameters<UniversalHandler>[0]): Promise<UniversalServerResponse> => {
    const res = await handler(req);
    const contentType = (req.header.get("content-type") ?? "").toLowerCase();
    if (contentType.startsWith("application/grpc-web")) {
      return withBody(res, rewriteEnvelopes(res.body, GRPC_WEB_TRAILER_FLAG, rewriteGrpcWebTrailer));
    }
    if (contentType.startsWith("application/grpc")) {
      fixGrpcStatus(res.header);
      fixGrpcStatus(res.trailer);
      return withBody(res, afterLast(res.body, () => fixGrpcStatus(res.trailer)));
    }
    if (contentType.startsWith("application/connect+")) {
      return withBody(res, rewriteEnvelopes(res.body, CONNECT_END_STREAM_FLAG, rewriteEndStream));
    }
    if (res.status === 500) return rewriteConnectUnary(res);
    return res;
  };
  return Object.assign(wrapped, handler);
}

function withBody(res: UniversalServerResponse, body: AsyncIterable<Uint8Array> | undefined): UniversalServerResponse {
  return { ...res, body };
}

function fixGrpcStatus(headers: Headers | undefined): void {
  const encoded = headers?.get("grpc-message");
  if (!headers || encoded == null) return;
  const message = decodeURIComponentSafe(encoded);
  headers.set("grpc-message", grpcPercentEncode(message));
  if (headers.get("grpc-status") === GRPC_INTERNAL && CLIENT_MISTAKE.test(message)) {
    headers.set("grpc-status", GRPC_INVALID_ARGUMENT);
  }
}

/**
 * grpc-message as the gRPC spec encodes it: only bytes outside printable ASCII, and "%", are
 * percent-encoded. connect encodes like encodeURIComponent, and grpc-js clients decode with
 * decodeURI, which leaves "%3B" for ";" in what users read; spelled the spec's way, every client
 * reads the message the native gRPC port (grpc-js) sends, character for character.
 */
export function grpcPercentEncode(message: string): string {
  if (/^[\x20-\x24\x26-\x7e]*$/.test(message)) return message;
  let out = "";
  for (const byte of Buffer.from(message, "utf8")) {
    out += byte >= 0x20 && byte <= 0x7e && byte !== 0x25 ? String.fromCharCode(byte) : `%${byte.toString(16).toUpperCase().padStart(2, "0")}`;
  }
  return out;
}

/** Runs `last` once the body is fully read (the trailers are final then), before the adapter sends them. */
async function* afterLast(body: AsyncIterable<Uint8Array> | undefined, last: () => void): AsyncIterable<Uint8Array> {
  try {
    if (body) yield* body;
  } finally {
    last();
  }
}

/** Passes envelopes through, rewriting the data of the (uncompressed) ones with `flag` set. */
async function* rewriteEnvelopes(
  body: AsyncIterable<Uint8Array> | undefined,
  flag: number,
  rewrite: (data: Buffer) => Buffer,
): AsyncIterable<Uint8Array> {
  if (!body) return;
  let pending = Buffer.alloc(0);
  for await (const chunk of body) {
    pending = pending.length === 0 ? Buffer.from(chunk) : Buffer.concat([pending, chunk]);
    while (pending.length >= 5) {
      const length = pending.readUInt32BE(1);
      if (pending.length < 5 + length) break;
      const flags = pending[0];
      const data = pending.subarray(5, 5 + length);
      pending = pending.subarray(5 + length);
      if ((flags & flag) === flag && (flags & COMPRESSED_FLAG) === 0) {
        const head = Buffer.alloc(5);
        const rewritten = rewrite(data);
        head[0] = flags;
        head.writeUInt32BE(rewritten.length, 1);
        yield Buffer.concat([head, rewritten]);
      } else {
        yield Buffer.concat([Buffer.from([flags]), lengthBytes(length), data]);
      }
    }
  }
  if (pending.length > 0) yield pending;
}

function lengthBytes(length: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(length, 0);
  return b;
}

/** gRPC-web trailers are HTTP/1-style header lines inside the last frame. */
function rewriteGrpcWebTrailer(data: Buffer): Buffer {
  const text = data.toString("latin1");
  const status = /^grpc-status:[ \t]*(\d+)[ \t]*\r?$/im.exec(text);
  const message = /^grpc-message:[ \t]*(.*?)[ \t]*\r?$/im.exec(text);
  if (status?.[1] !== GRPC_INTERNAL || !CLIENT_MISTAKE.test(decodeURIComponentSafe(message?.[1] ?? ""))) return data;
  return Buffer.from(text.replace(/^grpc-status:[ \t]*13(?=[ \t]*\r?$)/im, `grpc-status: ${GRPC_INVALID_ARGUMENT}`), "latin1");
}

/** The Connect end-stream message: {"error": {"code": ..., "message": ...}, "metadata": ...}. */
function rewriteEndStream(data: Buffer): Buffer {
  try {
    const end = JSON.parse(data.toString("utf8"));
    if (end?.error?.code === "internal" && CLIENT_MISTAKE.test(String(end.error.message ?? ""))) {
      end.error.code = "invalid_argument";
      return Buffer.from(JSON.stringify(end), "utf8");
    }
  } catch {
    // not JSON we understand: pass it on as it is
  }
  return data;
}

/** A Connect unary error is a JSON body with an HTTP status (500 for internal, 400 for invalid_argument). */
async function rewriteConnectUnary(res: UniversalServerResponse): Promise<UniversalServerResponse> {
  if (!res.body || res.header?.get("content-encoding")) return res;
  const chunks: Buffer[] = [];
  for await (const chunk of res.body) chunks.push(Buffer.from(chunk));
  const bytes = Buffer.concat(chunks);
  const replay = (b: Uint8Array) => ({ async *[Symbol.asyncIterator]() { yield b; } });
  try {
    const error = JSON.parse(bytes.toString("utf8"));
    if (error?.code === "internal" && CLIENT_MISTAKE.test(String(error.message ?? ""))) {
      error.code = "invalid_argument";
      const rewritten = Buffer.from(JSON.stringify(error), "utf8");
      const header = new Headers(res.header);
      header.set("content-length", String(rewritten.length));
      return { ...res, status: 400, header, body: replay(rewritten) };
    }
  } catch {
    // not a JSON error body: pass it on as it is
  }
  return { ...res, body: replay(bytes) };
}

function decodeURIComponentSafe(s: string): string {
  try {
    return decodeURIComponent(s);
  } catch {
    return s;
  }
}
