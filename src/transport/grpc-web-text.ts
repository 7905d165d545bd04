/**
 * gRPC-Web's text mode (`application/grpc-web-text`, the default of the official grpc-web
 * browser client): the same frames as binary gRPC-Web, base64-encoded both ways. connect serves
 * binary gRPC-Web only, so a text request is decoded to a binary one before it reaches connect,
 * and the answer is encoded back as it streams, chunk by chunk (WatchKeys messages arrive
 * without waiting for the end).
 *
 * Use: `routes: serveGrpcWebText(routes)`, outside every other wrapper (they see binary gRPC-Web).
 */
import { Code, ConnectError, type ConnectRouter } from "@connectrpc/connect";
import type { UniversalHandler, UniversalServerRequest, UniversalServerResponse } from "@connectrpc/connect/protocol";

const TEXT = "application/grpc-web-text";
/** Text mode carries protobuf only: "+proto" or no suffix. */
const TEXT_CONTENT_TYPE = /^application\/grpc-web-text(\+proto)?\s*(;.*)?$/i;

export function serveGrpcWebText(routes: (router: ConnectRouter) => void): (router: ConnectRouter) => void {
  return (router) => {
    routes(router);
    const handlers = router.handlers as UniversalHandler[];
    for (let i = 0; i < handlers.length; i++) handlers[i] = wrap(handlers[i]);
  };
}

function wrap(handler: UniversalHandler): UniversalHandler {
  const wrapped = async (req: UniversalServerRequest): Promise<UniversalServerResponse> => {
    const contentType = req.header.get("content-type") ?? "";
    if (!contentType.toLowerCase().startsWith(TEXT)) return handler(req);
    // Anything but +proto (grpc-web-text+json does not exist) goes on as a type connect refuses with 415.
    if (!TEXT_CONTENT_TYPE.test(contentType)) return handler(req);
    const header = new Headers(req.header);
    header.set("content-type", "application/grpc-web+proto");
    const body = isByteStream(req.body) ? fromBase64(req.body) : req.body;
    const res = await handler({ ...req, header, body });
    const resHeader = new Headers(res.header);
    const resType = resHeader.get("content-type");
    if (resType?.toLowerCase().startsWith("application/grpc-web")) {
      resHeader.set("content-type", "application/grpc-web-text+proto");
      resHeader.delete("content-length");
      return { ...res, header: resHeader, body: res.body ? toBase64(res.body) : res.body };
    }
    return res;
  };
  return Object.assign(wrapped, handler);
}

function isByteStream(body: UniversalServerRequest["body"]): body is AsyncIterable<Uint8Array> {
  return typeof body === "object" && body !== null && Symbol.asyncIterator in body;
}

/**
 * Decodes base64 as it arrives. A client may send several base64 texts one after another (each
 * with its own padding), so text is decoded in whole 4-character groups, and a group that ends
 * in padding ends one text.
 */
async function* fromBase64(body: AsyncIterable<Uint8Array>): AsyncIterable<Uint8Array> {
  let pending = "";
  for await (const chunk of body) {
    pending += Buffer.from(chunk).toString("latin1").replace(/[\r\n\t ]/g, "");
    const whole = pending.length - (pending.length % 4);
    if (whole === 0) continue;
    yield decodeGroups(pending.slice(0, whole));
    pending = pending.slice(whole);
  }
  if (pending.length > 0) yield decodeGroups(pending);
}

function decodeGroups(text: string): Buffer {
  if (!/^[A-Za-z0-9+/=]*$/.test(text)) {
    throw new ConnectError("the body of an application/grpc-web-text request is not base64", Code.InvalidArgument);
  }
  return Buffer.from(text, "base64");
}

/**
 * Encodes each chunk as it comes, padded: holding back the one or two bytes that do not fill a
 * 3-byte group would hold back the end of a message (a WatchKeys update) until the next one.
 * A padded group in mid-stream is valid for gRPC-Web text clients, which decode in 4-character
 * groups (as fromBase64 does here).
 */
async function* toBase64(body: AsyncIterable<Uint8Array>): AsyncIterable<Uint8Array> {
  for await (const chunk of body) {
    if (chunk.length > 0) yield Buffer.from(Buffer.from(chunk).toString("base64"), "latin1");
  }
}
