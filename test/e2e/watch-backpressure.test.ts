/**
 * A dashboard that stops reading for a while (a busy browser tab, a paused terminal) must, when
 * it reads again, get the latest state after at most what its own HTTP/2 window held, not a
 * backlog of every step the server had already produced for it.
 */
import { fromBinary } from "@bufbuild/protobuf";
import { WatchKeysResponseSchema, type WatchKeysResponse } from "../../gen/ts/keypool/v1/keypool_pb";
import { rawWatch, startWatchServer, type WatchServer } from "./watch-harness";

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Splits gRPC length-prefixed frames off the front of `buffer`; returns the decoded messages and the rest. */
function takeMessages(buffer: Buffer): { messages: WatchKeysResponse[]; rest: Buffer } {
  const messages: WatchKeysResponse[] = [];
  let offset = 0;
  while (buffer.length - offset >= 5) {
    const length = buffer.readUInt32BE(offset + 1);
    if (buffer.length - offset - 5 < length) break;
    messages.push(fromBinary(WatchKeysResponseSchema, buffer.subarray(offset + 5, offset + 5 + length)));
    offset += 5 + length;
  }
  return { messages, rest: buffer.subarray(offset) };
}

describe("WatchKeys and a client that pauses reading", () => {
  let s: WatchServer;
  afterEach(async () => {
    await s?.close();
  });

  test("after a pause it gets at most a window's worth of old steps, then the latest state", async () => {
    s = await startWatchServer({ keys: 1, hub: { coalesceMs: 1, heartbeatMs: 60_000 } });
    const [keyHash] = s.keyHashes as [string];
    // A small receive window: the client holds at most about 2 KiB of unread messages.
    const { session, stream } = rawWatch(s.server.url, { initialWindowSize: 2048 });

    let buffer: Buffer = Buffer.alloc(0);
    const received: WatchKeysResponse[] = [];
    stream.on("data", (chunk: Buffer) => {
      const { messages, rest } = takeMessages(Buffer.concat([buffer, chunk]));
      received.push(...messages);
      buffer = rest;
    });
    for (let i = 0; i < 100 && received.length === 0; i++) await sleep(10);
    expect(received[0]?.event.case).toBe("snapshot");
    stream.pause();

    // 300 separate changes, each outside the previous one's coalescing window, while the
    // client is not reading.
    // Each status carries a 500-byte reason, so a message is about 600 bytes.
    const STEPS = 150;
    const padding = ".".repeat(500);
    for (let step = 1; step <= STEPS; step++) {
      s.pool.disableKey(keyHash, "disabled", `step ${step} ${padding}`);
      await sleep(3);
    }
    const before = received.length;
    stream.resume();
    const isLatest = (m: WatchKeysResponse) => m.event.case === "updated" && m.event.value.stateReason.startsWith(`step ${STEPS} `);
    for (let i = 0; i < 500 && !received.some(isLatest); i++) await sleep(10);

    const afterPause = received.slice(before);
    expect(afterPause.some(isLatest)).toBe(true);
    // Each message is about 100 bytes: a 2 KiB window holds a few dozen. Without the server
    // holding back, its own 16 KiB stream buffer added well over a hundred more stale steps.
    // What a paused client can hold is its stream's read buffer (16 KiB) and its 2 KiB window:
    // about 30 of these messages (33 measured). Were the server to make messages as fast as node
    // buffers them, its own 16 KiB stream buffer would add about 30 more (61 measured).
    const sentWhilePaused = received.length - 1; // all but the snapshot
    expect(sentWhilePaused).toBeLessThanOrEqual(45);

    stream.close();
    session.destroy();
  });
});
