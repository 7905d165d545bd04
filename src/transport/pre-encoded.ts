/**
 * A message that carries its own complete protobuf encoding, made where the bytes are cheapest to
 * make (src/transport/watch-keys.ts shares one encoded body among many watches): a serializer
 * that knows to look (the native port's, src/server/grpc-js-adapter.ts, and the main port's gRPC
 * streams, src/server/grpc-server-streams.ts) writes these bytes as they are instead of walking
 * the message. The bytes are exactly toBinary's of the same message, so a serializer that does
 * not look (connect-node's, for gRPC-Web and Connect) writes the same thing the long way.
 *
 * The encoding is carried in parts, written one after the other: the message's own few bytes,
 * then a body shared with other messages. A transport that can write the parts as they are (the
 * main port's gRPC streams) holds no copy of the shared body for a stream whose client is not
 * reading; one that needs one buffer (the native port's serializer) joins them (encodedBytes).
 */
const ENCODING = Symbol("keypool.encoding");

/**
 * A message whose encoding is made when a transport asks for it, from what the message keeps
 * (src/transport/watch-keys.ts), so that no list of parts is kept on every message.
 */
export abstract class EncodedOnDemand {
  get [ENCODING](): readonly Uint8Array[] {
    return this.encodingParts();
  }

  protected abstract encodingParts(): readonly Uint8Array[];
}

/** Whether a message carries its encoding (without making it). */
export function carriesEncoding(message: unknown): boolean {
  return typeof message === "object" && message !== null && ENCODING in message;
}

/** The encoding a message carries, in parts, if it carries one. */
export function encodingOf(message: unknown): readonly Uint8Array[] | undefined {
  return (message as { [ENCODING]?: readonly Uint8Array[] })[ENCODING];
}

/** The encoding a message carries, as one buffer, if it carries one. */
export function encodedBytes(message: unknown): Buffer | undefined {
  const parts = encodingOf(message);
  return parts && Buffer.concat(parts);
}
