/**
 * WatchKeys watchers for bench/watch-memory.bench.ts, run as a child process on the load core:
 * `watchers` raw HTTP/2 streams over `connections` sessions, all opened at once.
 *
 * - mode "idle": watchers that never read. Nothing consumes their data, so HTTP/2 flow control
 *   stops the server after a window's worth; prints `OPEN` once every stream has its response
 *   headers, then waits to be killed.
 * - mode "read": dashboards that read everything. Prints `SYNCED <ms>` once every stream has had
 *   the last slice of its snapshot (`more` false), found by scanning the protobuf fields without
 *   decoding the statuses, then waits to be killed.
 */
import * as http2 from "node:http2";
import { create, toBinary } from "@bufbuild/protobuf";
import { WatchKeysRequestSchema } from "../gen/ts/keypool/v1/keypool_pb";
import { grpcFrame } from "./lib/grpc-frame";

interface AudienceConfig {
  port: number;
  watchers: number;
  connections: number;
  mode: "idle" | "read";
  batch: boolean;
  /** "health": grpc.health.v1.Health/Watch streams instead, the transport's own cost of a stream. */
  method?: "watch" | "health";
}

const WATCH = "/keypool.v1.KeyPoolService/WatchKeys";
const HEALTH_WATCH = "/grpc.health.v1.Health/Watch";

function varint(bytes: Buffer, at: number): [number, number] {
  let value = 0;
  let shift = 1;
  for (;;) {
    const b = bytes[at++]!;
    value += (b & 0x7f) * shift;
    if (b < 0x80) return [value, at];
    shift *= 128;
  }
}

/** Whether a WatchKeysResponse is the last snapshot slice: field 3 present and its field 2 not 1. */
function isLastSlice(message: Buffer): boolean {
  let at = 0;
  while (at < message.length) {
    const [tag, next] = varint(message, at);
    at = next;
    const wire = tag & 7;
    if (wire === 0) {
      at = varint(message, at)[1];
      continue;
    }
    const [length, start] = varint(message, at);
    at = start + length;
    if (tag >>> 3 !== 3) continue;
    // Inside KeySnapshot: skip the keys, look for `more`.
    let inner = start;
    let more = false;
    while (inner < start + length) {
      const [innerTag, afterTag] = varint(message, inner);
      if ((innerTag & 7) === 0) {
        const [value, afterValue] = varint(message, afterTag);
        if (innerTag >>> 3 === 2) more = value !== 0;
        inner = afterValue;
      } else {
        const [innerLength, innerStart] = varint(message, afterTag);
        inner = innerStart + innerLength;
      }
    }
    return !more;
  }
  return false;
}

async function main(config: AudienceConfig): Promise<void> {
  const health = config.method === "health";
  const request = health ? grpcFrame(new Uint8Array(0)) : grpcFrame(toBinary(WatchKeysRequestSchema, create(WatchKeysRequestSchema, { batch: config.batch })));
  const streamPath = health ? HEALTH_WATCH : WATCH;
  const sessions = Array.from({ length: config.connections }, () => {
    const session = http2.connect(`http://127.0.0.1:${config.port}`, { settings: { maxConcurrentStreams: 1000 } });
    session.on("error", () => undefined);
    return session;
  });
  let open = 0;
  let synced = 0;
  let errors = 0;
  const t0 = performance.now();
  for (let i = 0; i < config.watchers; i++) {
    const stream = sessions[i % sessions.length]!.request({ ":method": "POST", ":path": streamPath, "content-type": "application/grpc", te: "trailers" });
    stream.on("error", () => errors++);
    stream.on("response", () => {
      if (++open === config.watchers && config.mode === "idle") console.log(`OPEN ${Math.round(performance.now() - t0)}`);
    });
    stream.end(request);
    if (config.mode === "read") {
      let buffer: Buffer = Buffer.alloc(0);
      let done = false;
      stream.on("data", (chunk: Buffer) => {
        if (done) return;
        buffer = buffer.length ? Buffer.concat([buffer, chunk]) : chunk;
        while (buffer.length >= 5) {
          const length = buffer.readUInt32BE(1);
          if (buffer.length < 5 + length) break;
          const message = buffer.subarray(5, 5 + length);
          buffer = buffer.subarray(5 + length);
          if (isLastSlice(message)) {
            done = true;
            buffer = Buffer.alloc(0);
            if (++synced === config.watchers) console.log(`SYNCED ${Math.round(performance.now() - t0)} errors ${errors}`);
            break;
          }
        }
      });
    }
  }
  // Stay until the parent kills this process.
  await new Promise(() => undefined);
}

main(JSON.parse(process.argv[2]!) as AudienceConfig).catch((error) => {
  console.error(error);
  process.exit(1);
});
