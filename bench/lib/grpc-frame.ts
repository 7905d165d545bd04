/**
 * The gRPC wire framing of one message: a 1-byte compressed flag (0), a 4-byte big-endian length,
 * then the message. h2load sends such a file verbatim as the request body.
 */
export function grpcFrame(message: Uint8Array): Buffer {
  const frame = Buffer.alloc(5 + message.length);
  frame.writeUInt8(0, 0);
  frame.writeUInt32BE(message.length, 1);
  Buffer.from(message.buffer, message.byteOffset, message.byteLength).copy(frame, 5);
  return frame;
}
