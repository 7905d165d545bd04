/**
 * A long-lived connection across full collections, on both ports: each listener hands its HTTP/2
 * sessions to stream-map renewal (src/server/stream-map-renewal.ts), and the calls a client has
 * open across a renewal (a watch, a Lease waiting for a key) go on: the waiting Lease gets the key
 * added later, and the watch sees it come and be leased. The full collections are the test's own
 * (ManualCollections), so that no collection is forced inside the test worker.
 */
import type * as http2 from "node:http2";
import { durationFromMs } from "@bufbuild/protobuf/wkt";
import { StreamMapRenewal } from "../../src/server/stream-map-renewal";
import { PORTS, urlOf } from "../support/ports";
import { ManualCollections, streamMapOf, until } from "../support/stream-map";
import { poolClient, startWatchServer, StreamView, type WatchServer } from "./watch-harness";

jest.setTimeout(30_000);

describe.each(PORTS)("on the %s port", (port) => {
  let s: WatchServer;
  let collections: ManualCollections;
  let sessions: http2.Http2Session[];

  beforeEach(async () => {
    sessions = [];
    const track = StreamMapRenewal.prototype.track;
    jest.spyOn(StreamMapRenewal.prototype, "track").mockImplementation(function (this: StreamMapRenewal, session) {
      sessions.push(session);
      return track.call(this, session);
    });
    collections = new ManualCollections();
    // One key, held a minute after each Lease, so that a second Lease waits.
    s = await startWatchServer({ keys: 1, pool: { reuseDelayMs: 60_000 }, hub: { coalesceMs: 20, heartbeatMs: 5_000 }, fullCollections: collections });
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

    collections.collect();
    expect(streamMapOf(session)).not.toBe(before);
    expect([...streamMapOf(session).keys()]).toEqual([...before.keys()]);

    // A key added now goes to the waiting Lease, and the watch sees it come and be leased.
    const [added] = s.pool.addKeys([{ provider: "openai", key: `sk-watch-test-added-${"x".repeat(20)}`, modelFamilies: ["gpt4o"] }]).keyHashes;
    expect((await waiting).keyHash).toBe(added);
    await view.until(() => view.keys.get(added!)?.leaseCount === 1n);
    expect(view.error).toBeUndefined();

    controller.abort();
    await watching;
    // The connection's calls are over: its session is still tracked, and a later collection
    // renews it again.
    const idle = streamMapOf(session);
    collections.collect();
    expect(streamMapOf(session)).not.toBe(idle);
  });

  it("stops listening for full collections once the last connection has closed", async () => {
    const client = poolClient(urlOf(s.server, port));
    await client.listKeys({});
    expect(collections.subscribers).toBe(1);
    await s.close();
    expect(collections.subscribers).toBe(0);
  });
});
