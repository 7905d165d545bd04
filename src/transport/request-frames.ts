/**
 * The flag byte of each length-prefixed request frame (gRPC, gRPC-web, Connect streaming). A
 * client may set only bit 0, "compressed"; 0x80 marks a gRPC-web trailer and 0x02 a Connect
 * end-of-stream, both things only a server sends. connect reads any other flag as a plain
 * message, so a frame that is not a message would be served as one: here it fails the call with
 * INVALID_ARGUMENT instead. The frames pass through unchanged and uncopied; only their 5-byte
 * prefixes are read.
 */
import { Code, ConnectError } from "@connectrpc/connect";
import type { UniversalServerRequest } from "@connectrpc/connect/protocol";

const COMPRESSED_FLAG = 0x01;
const PREFIX_BYTES = 5;

/** Framed protocols: gRPC and gRPC-web in every encoding, and Connect streaming. */
function isFramed(contentType: string): boolean {
  return contentType.startsWith("application/grpc") || contentType.startsWith("application/connect+");
}

/** `req` with its body checked frame by frame, when its protocol frames messages. */
export function checkRequestFrames(req: UniversalServerRequest, contentType: string): UniversalServerRequest {
  if (!isFramed(contentType) || !isByteStream(req.body)) return req;
  return { ...req, body: checkedFrames(req.body) };
}

function isByteStream(body: UniversalServerRequest["body"]): body is AsyncIterable<Uint8Array> {
  return typeof body === "object" && body !== null && Symbol.asyncIterator in body;
}

async function* checkedFrames(body: AsyncIterable<Uint8Array>): AsyncIterable<Uint8Array> {
  // Where the next frame's prefix starts, counted from the start of the current chunk; and
  // the part of a prefix that a chunk boundary split.
  let next = 0;
  let prefix: number[] = [];
  for await (const chunk of body) {
    let at = next;
    while (at < chunk.length) {
      if (prefix.length === 0 && at + PREFIX_BYTES <= chunk.length) {
        checkFlags(chunk[at]);
        at += PREFIX_BYTES + readLength(chunk, at + 1);
        continue;
      }
      prefix.push(chunk[at]);
      at++;
      if (prefix.length === PREFIX_BYTES) {
        checkFlags(prefix[0]);
        at += readLength(Uint8Array.from(prefix), 1);
        prefix = [];
      }
    }
    next = at - chunk.length;
    yield chunk;
  }
}

function readLength(bytes: Uint8Array, offset: number): number {
  return ((bytes[offset] << 24) >>> 0) + (bytes[offset + 1] << 16) + (bytes[offset + 2] << 8) + bytes[offset + 3];
}

function checkFlags(flags: number): void {
  if ((flags & ~COMPRESSED_FLAG) === 0) return;
  throw new ConnectError(
    `a request frame has the flag byte 0x${flags.toString(16).padStart(2, "0")}; a client's frames may only be 0x00 (a message) or 0x01 (a compressed message)`,
    Code.InvalidArgument,
  );
}
