/**
 * Streams opened all at once start a few per turn (src/server/stream-admission.ts), from a
 * bounded queue: beyond its bound a stream is refused before its handler runs, with a status a
 * gRPC client retries (main port: HTTP/2 REFUSED_STREAM; native port: UNAVAILABLE), and the
 * streams admitted work as usual.
 */
import * as http2 from "node:http2";
import { Code } from "@connectrpc/connect";
import { systemClock } from "../../src/domain/clock";
import { KeyPool } from "../../src/domain/key-pool";
import { startServer, type RunningServer } from "../../src/server/start-server";
import { createWatchKeys, encodedStatusBytes } from "../../src/transport/watch-keys";
import { WatchHub } from "../../src/watch/watch-hub";
import { grpcFrame } from "../support/raw-grpc";

type Outcome = { kind: "snapshot" } | { kind: "refused"; rstCode: number; grpcStatus?: string; grpcMessage?: string };

/** Opens `count` WatchKeys streams in one go on one connection; resolves with what each got first. */
function openAtOnce(url: string, count: number, body: Buffer = grpcFrame(new Uint8Array(0))): { session: http2.ClientHttp2Session; outcomes: Promise<Outcome[]> } {
  const session = http2.connect(url);
  session.on("error", () => undefined);
  const outcomes = Array.from({ length: count }, () => {
    const stream = session.request({ ":method": "POST", ":path": "/keypool.v1.KeyPoolService/WatchKeys", "content-type": "application/grpc", te: "trailers" });
    stream.on("error", () => undefined);
    stream.end(body);
    return new Promise<Outcome>((resolve) => {
      let trailers: http2.IncomingHttpHeaders = {};
      stream.on("trailers", (t) => (trailers = t));
      stream.on("response", (headers) => {
        // A trailers-only answer carries the status in its headers.
        if (headers["grpc-status"] !== undefined) trailers = headers;
      });
      stream.on("data", () => resolve({ kind: "snapshot" }));
      stream.on("close", () =>
        resolve({
          kind: "refused",
          rstCode: stream.rstCode ?? 0,
          grpcStatus: trailers["grpc-status"] as string | undefined,
          grpcMessage: trailers["grpc-message"] === undefined ? undefined : decodeURIComponent(trailers["grpc-message"] as string),
        }),
      );
    });
  });
  return { session, outcomes: Promise.all(outcomes) };
}

describe("streams opened all at once", () => {
  let pool: KeyPool;
  let hub: WatchHub;
  let server: RunningServer;

  beforeEach(async () => {
    pool = new KeyPool({ clock: systemClock, reuseDelayMs: 0 });
    pool.addKeys([{ provider: "openai", key: "sk-storm-test-key-0000000000", modelFamilies: ["gpt4o"] }]);
    hub = new WatchHub(pool, { clock: systemClock, measure: encodedStatusBytes });
    server = await startServer(
      { host: "127.0.0.1", port: 0, grpcPort: 0 },
      { pool, watchKeys: createWatchKeys(hub), shutdownGraceMs: 500, streamAdmission: { perTurn: 2, maxWaiting: 3 } },
    );
  });
  afterEach(async () => {
    await server.close();
    hub.close();
    pool.close();
  });

  test.each(["main", "native"] as const)("on the %s port: beyond the queue's bound they are refused as retryable, the others get their snapshot", async (port) => {
    const url = port === "main" ? server.url : server.grpcUrl!;
    const { session, outcomes } = openAtOnce(url, 10);
    const results = await outcomes;
    const admitted = results.filter((r) => r.kind === "snapshot");
    const refused = results.filter((r): r is Extract<Outcome, { kind: "refused" }> => r.kind === "refused");
    // All ten arrive in one read: three fit the queue, seven are refused before any handler ran.
    expect(admitted).toHaveLength(3);
    expect(refused).toHaveLength(7);
    for (const r of refused) {
      if (port === "main") expect(r.rstCode).toBe(http2.constants.NGHTTP2_REFUSED_STREAM);
      else expect(r).toMatchObject({ grpcStatus: "14", grpcMessage: "too many streams are starting at once; retry" });
    }
    expect(hub.subscriberCount).toBe(3);

    // The queue has drained: a stream opened now starts, and the server answers as before.
    const again = openAtOnce(url, 1);
    expect(await again.outcomes).toEqual([{ kind: "snapshot" }]);
    expect(hub.subscriberCount).toBe(4);
    again.session.destroy();
    session.destroy();
  });

  test.each(["main", "native"] as const)("on the %s port: a stream whose request ended without a body while it waited is still answered", async (port) => {
    const url = port === "main" ? server.url : server.grpcUrl!;
    // Three fit the queue; their requests (no body at all) have ended long before they start.
    const { session, outcomes } = openAtOnce(url, 3, Buffer.alloc(0));
    const results = await outcomes;
    // No message where a server stream needs one: an error status naming it (the client's
    // mistake, never INTERNAL), not a stream left hanging.
    for (const r of results) {
      expect(r.kind).toBe("refused");
      const answer = r as Extract<Outcome, { kind: "refused" }>;
      expect([String(Code.InvalidArgument), String(Code.Unimplemented)]).toContain(answer.grpcStatus);
      expect(answer.grpcMessage).toMatch(/message/);
    }
    expect(hub.subscriberCount).toBe(0);
    session.destroy();
  });
});
