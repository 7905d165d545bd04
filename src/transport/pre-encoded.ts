/**
 * A message that carries its own complete protobuf encoding, made where the bytes are cheapest to
 * make (src/transport/watch-keys.ts shares one encoded body among many watches): a serializer
 * that knows to look (the native port's, src/server/grpc-js-adapter.ts, and the main port's gRPC
 * streams, src/server/grpc-server-streams.ts) writes these bytes as they are instead of walking
 * the message. The bytes are exactly toBinary's of the same message, so a serializer that does
 * not look (connect-node's, for gRPC-Web and Connect) writes the same thing the long way.
 */
const ENCODING = Symbol("keypool.encoding");

export function withEncoding<T extends object>(message: T, bytes: Buffer): T {
  (message as { [ENCODING]?: Buffer })[ENCODING] = bytes;
  return message;
}

/** The encoding a message carries, if it carries one. */
export function encodingOf(message: unknown): Buffer | undefined {
  return (message as { [ENCODING]?: Buffer })[ENCODING];
}
