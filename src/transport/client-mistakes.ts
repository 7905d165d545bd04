/**
 * connect-node's own answers to a client's mistakes, set right before they leave:
 *
 * - A request message that does not parse (invalid UTF-8 in a string field, a truncated message,
 *   an illegal tag) or carries a compressed flag without an encoding is answered INTERNAL; an
 *   empty body or two messages in a unary call UNIMPLEMENTED. Those are the client's mistakes,
 *   and INTERNAL would tell it — and every alert on server faults — that keypool is broken:
 *   they become INVALID_ARGUMENT.
 * - connect's decoding errors quote the input (a 100 KB number in JSON comes back whole), which
 *   makes an error larger than a gRPC client accepts in its trailers: every error text is cut
 *   to ERROR_MESSAGE_LIMIT_BYTES.
 * - A request frame whose flag byte has bits other than "compressed" set (0x80 is a response
 *   trailer, 0x02 a Connect end-of-stream) is not a message: INVALID_ARGUMENT
 *   (request-frames.ts).
 *
 * Every protocol is covered (gRPC trailers, gRPC-web trailer frames, Connect unary JSON errors,
 * Connect end-stream messages); every other answer passes untouched.
 *
 * On gRPC it also spells grpc-message the way the gRPC spec does (grpcPercentEncode below).
 *
 * Use: `connectNodeAdapter({ routes: reclassifyClientMistakes(routes), ... })`.
 */
import * as zlib from "node:zlib";
import type { ConnectRouter } from "@connectrpc/connect";
import type { UniversalHandler, UniversalServerResponse } from "@connectrpc/connect/protocol";
import { truncated } from "../domain/echo";
import { checkRequestFrames } from "./request-frames";

/** The longest error text any client gets. */
export const ERROR_MESSAGE_LIMIT_BYTES = 1024;

/**
 * The messages connect gives to request-decoding failures it labels INTERNAL. The server only
 * ever decompresses requests, so a failed decompression is the client's too (zlib errors other
 * than Z_DATA_ERROR, such as a truncated gzip stream, come out as INTERNAL).
 */
const DECODING_MISTAKE = /^(parse binary: |received compressed envelope|decompression failed$)/;
/** The messages connect gives, as UNIMPLEMENTED, to a unary or server-streaming call without exactly one request. */
const COUNT_MISTAKE = /^protocol error: (missing input message|received extra input message) for /;

const GRPC = { internal: "13", unimplemented: "12", invalidArgument: "3" } as const;
const GRPC_WEB_TRAILER_FLAG = 0x80;
const CONNECT_END_STREAM_FLAG = 0x02;
const COMPRESSED_FLAG = 0x01;

/** The gRPC status and text a client should get for what connect answered. */
function corrected(code: string, message: string): { code: string; message: string } {
  const mistake =
    (code === GRPC.internal && DECODING_MISTAKE.test(message)) ||
    (code === GRPC.unimplemented && COUNT_MISTAKE.test(message));
  return { code: mistake ? GRPC.invalidArgument : code, message: truncated(message, ERROR_MESSAGE_LIMIT_BYTES) };
}

/** Connect's names for the codes that `corrected` reads or writes. */
const CONNECT_NAME: Record<string, string> = { [GRPC.internal]: "internal", [GRPC.unimplemented]: "unimplemented", [GRPC.invalidArgument]: "invalid_argument" };
const FROM_CONNECT_NAME: Record<string, string> = Object.fromEntries(Object.entries(CONNECT_NAME).map(([k, v]) => [v, k]));

export function reclassifyClientMistakes(routes: (router: ConnectRouter) => void): (router: ConnectRouter) => void {
  return (router) => {
    routes(router);
    const handlers = router.handlers as UniversalHandler[];
    for (let i = 0; i < handlers.length; i++) handlers[i] = wrap(handlers[i]);
  };
}

function wrap(handler: UniversalHandler): UniversalHandler {
  const wrapped = async (req: Parameters<UniversalHandler>[0]): Promise<UniversalServerResponse> => {
    const contentType = (req.header.get("content-type") ?? "").toLowerCase();
    const res = await handler(checkRequestFrames(req, contentType));
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
    if (res.status !== 200) return rewriteConnectUnary(res);
    return res;
  };
  return Object.assign(wrapped, handler);
}

function withBody(res: UniversalServerResponse, body: AsyncIterable<Uint8Array> | undefined): UniversalServerResponse {
  return { ...res, body };
}

/** The grpc-status and grpc-message a client gets, corrected and bounded as above (also for src/server/grpc-server-streams.ts). */
export function fixGrpcStatus(headers: Headers | undefined): void {
  if (!headers) return;
  const code = headers.get("grpc-status");
  const encoded = headers.get("grpc-message");
  const fixed = corrected(code ?? "0", decodeURIComponentSafe(encoded ?? ""));
  if (code !== null && fixed.code !== code) headers.set("grpc-status", fixed.code);
  if (encoded !== null) headers.set("grpc-message", grpcPercentEncode(fixed.message));
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
  if (!status || status[1] === "0") return data;
  const message = /^grpc-message:[ \t]*(.*?)[ \t]*\r?$/im.exec(text);
  const fixed = corrected(status[1], decodeURIComponentSafe(message?.[1] ?? ""));
  let out = text.replace(/^grpc-status:[ \t]*\d+(?=[ \t]*\r?$)/im, `grpc-status: ${fixed.code}`);
  if (message) out = out.replace(/^grpc-message:[ \t]*.*?(?=[ \t]*\r?$)/im, () => `grpc-message: ${grpcPercentEncode(fixed.message)}`);
  return Buffer.from(out, "latin1");
}

/** Fixes a Connect error object ({code, message}) in place; true when anything changed. */
function fixConnectError(error: { code?: unknown; message?: unknown } | undefined): boolean {
  if (!error || typeof error.code !== "string") return false;
  const message = String(error.message ?? "");
  const fixed = corrected(FROM_CONNECT_NAME[error.code] ?? error.code, message);
  const code = CONNECT_NAME[fixed.code] ?? error.code;
  const changed = code !== error.code || fixed.message !== message;
  error.code = code;
  if (error.message !== undefined) error.message = fixed.message;
  return changed;
}

/** The Connect end-stream message: {"error": {"code": ..., "message": ...}, "metadata": ...}. */
function rewriteEndStream(data: Buffer): Buffer {
  try {
    const end = JSON.parse(data.toString("utf8"));
    if (fixConnectError(end?.error)) return Buffer.from(JSON.stringify(end), "utf8");
  } catch {
    // not JSON we understand: pass it on as it is
  }
  return data;
}

/** The encodings connect may compress a unary error body with (node-handler.ts accepts gzip and br). */
const DECOMPRESS: Record<string, (bytes: Buffer) => Buffer> = {
  "": (bytes) => bytes,
  identity: (bytes) => bytes,
  gzip: (bytes) => zlib.gunzipSync(bytes),
  br: (bytes) => zlib.brotliDecompressSync(bytes),
};

/** A Connect unary error is a JSON body with an HTTP status (500 for internal, 400 for invalid_argument). */
async function rewriteConnectUnary(res: UniversalServerResponse): Promise<UniversalServerResponse> {
  const encoding = res.header?.get("content-encoding")?.toLowerCase() ?? "";
  if (!res.body || !(encoding in DECOMPRESS)) return res;
  const chunks: Buffer[] = [];
  for await (const chunk of res.body) chunks.push(Buffer.from(chunk));
  const bytes = Buffer.concat(chunks);
  const replay = (b: Uint8Array) => ({ async *[Symbol.asyncIterator]() { yield b; } });
  try {
    const error = JSON.parse(DECOMPRESS[encoding](bytes).toString("utf8"));
    const before = error?.code;
    if (fixConnectError(error)) {
      // Sent uncompressed: an error body is short once its text is bounded.
      const rewritten = Buffer.from(JSON.stringify(error), "utf8");
      const header = new Headers(res.header);
      header.delete("content-encoding");
      header.set("content-length", String(rewritten.length));
      const status = error.code !== before && error.code === "invalid_argument" ? 400 : res.status;
      return { ...res, status, header, body: replay(rewritten) };
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
