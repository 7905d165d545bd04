/**
 * Clients that go away mid-stream are routine for a watch service (browser tabs close,
 * dashboards restart). The server logs them through its own logger at debug level, never on
 * stderr, and keeps serving.
 */
import { Writable } from "node:stream";
import { systemClock } from "../../src/domain/clock";
import { KeyPool } from "../../src/domain/key-pool";
import { createLogger } from "../../src/log";
import { startServer, type RunningServer } from "../../src/server/start-server";
import { createWatchKeys } from "../../src/transport/watch-keys";
import { WatchHub } from "../../src/watch/watch-hub";
import { eventually, poolClient, StreamView, type Protocol } from "./watch-harness";

describe("a client that disconnects mid-stream", () => {
  let pool: KeyPool;
  let hub: WatchHub;
  let server: RunningServer;
  const logLines: string[] = [];

  beforeAll(async () => {
    pool = new KeyPool({ clock: systemClock, reuseDelayMs: 0 });
    pool.addKeys([{ provider: "openai", key: "sk-disconnect-test-0123456789" }]);
    hub = new WatchHub(pool, { clock: systemClock, coalesceMs: 5, heartbeatMs: 60_000 });
    const destination = new Writable({
      write(chunk, _encoding, callback) {
        logLines.push(String(chunk));
        callback();
      },
    });
    server = await startServer(
      { host: "127.0.0.1", port: 0 },
      {
        pool,
        watchKeys: createWatchKeys(hub),
        logger: createLogger({ level: "debug", destination }),
        shutdownGraceMs: 500,
      },
    );
  });
  afterAll(async () => {
    await server.close();
    hub.close();
    pool.close();
  });

  const protocols: Protocol[] = ["connect", "connect-http1", "grpc-web", "grpc-web-http1", "grpc"];
  test.each(protocols)("over %s: nothing on stderr, the server keeps serving", async (protocol) => {
    const consoleError = jest.spyOn(console, "error").mockImplementation(() => undefined);
    try {
      const client = poolClient(server.url, protocol);
      for (let i = 0; i < 5; i++) {
        const controller = new AbortController();
        const view = new StreamView();
        const done = view.consume(client.watchKeys({}, { signal: controller.signal }));
        await view.until(() => view.kinds.length >= 1);
        // A change is on its way to the client when it leaves.
        await client.lease({ model: "gpt-4" });
        controller.abort();
        await done;
      }
      await eventually(() => hub.subscriberCount === 0, 5000, "the hub to drop every watch");
      // Give a late write failure the chance to surface before asserting it did not.
      await new Promise((resolve) => setTimeout(resolve, 100));
      expect(consoleError).not.toHaveBeenCalled();
      expect((await client.listKeys({})).keys).toHaveLength(1);
    } finally {
      consoleError.mockRestore();
    }
    expect(logLines.join("")).not.toContain("sk-disconnect-test");
  });

  test("the abandoned responses are in the server's own log, at debug level", () => {
    const abandoned = logLines.map((line) => JSON.parse(line)).filter((l) => l.msg?.includes("client went away"));
    expect(abandoned.length).toBeGreaterThan(0);
    expect(abandoned.every((l) => l.level === 20 && l.procedure === "keypool.v1.KeyPoolService/WatchKeys")).toBe(true);
  });
});
