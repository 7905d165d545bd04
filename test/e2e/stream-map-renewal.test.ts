/**
 * A long-lived connection across full collections, on both ports: each listener hands its HTTP/2
 * sessions to stream-map renewal (src/server/stream-map-renewal.ts), and the calls a client has
 * open across a renewal (a watch, a Lease waiting for a key) go on: the waiting Lease gets the key
 * added later, and the watch sees it come and be leased.
 */
import type * as http2 from "node:http2";
import { durationFromMs } from "@bufbuild/protobuf/wkt";
import * as renewal from "../../src/server/stream-map-renewal";
import { PORTS, urlOf } from "../support/ports";
import { fullCollection, streamMapOf, until } from "../support/stream-map";
import { poolClient, startWatchServer, StreamView, type WatchServer } from "./watch-harness";

jest.setTimeout(30_000);

describe.each(PORTS)("on the %s port", (port) => {
  let s: WatchServer;
  let sessions: http2.Http2Session[];

  beforeEach(async () => {
    sessions = [];
    const renew = renewal.renewStreamMapAfterFullCollections;
    jest.spyOn(renewal, "renewStreamMapAfterFullCollections").mockImplementation((session) => {
      sessions.push(session);
      return renew(session);
    });
    // One key, held a minute after each Lease, so that a second Lease waits.
    s = await startWatchServer({ keys: 1, pool: { reuseDelayMs: 60_000 }, hub: { coalesceMs: 20, heartbeatMs: 5_000 } });
  });

  afterEach(async () => {
    await s?.close();
    jest.restoreAllMocks();
  });

  it("renews the connection's stream map after a full collection; its open calls go on", async () => {
    const client = poolClient(urlOf(s.server, port));
    await client.lease({ model: "gpt-4o" });
    const waiting = client.lease({ model: "gpt-4o", maxWait: durationFromMs(20_000) });
    const controller = new AbortController();
    const view = new StreamView();
    const watching = view.consume(client.watchKeys({}, { signal: controller.signal }));
    await view.until(() => view.kinds.length >= 1);
    await until(() => s.pool.waitingLeases === 1, "the Lease to wait");

    expect(sessions).toHaveLength(1);
    const [session] = sessions as [http2.Http2Session];
    const before = streamMapOf(session);
    expect(before.size).toBe(2); // the watch and the waiting Lease

    fullCollection();
    await until(() => streamMapOf(session) !== before, "the stream map's renewal");
    expect([...streamMapOf(session).keys()]).toEqual([...before.keys()]);

    // A key added now goes to the waiting Lease, and the watch sees it come and be leased.
    const [added] = s.pool.addKeys([{ provider: "openai", key: `sk-watch-test-added-${"x".repeat(20)}`, modelFamilies: ["gpt4o"] }]).keyHashes;
    expect((await waiting).keyHash).toBe(added);
    await view.until(() => view.keys.get(added!)?.leaseCount === 1n);
    expect(view.error).toBeUndefined();

    controller.abort();
    await watching;
  });
});
