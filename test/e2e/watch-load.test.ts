/**
 * WatchKeys under load, over real sockets: many subscribers converge on ListKeys after a burst,
 * and a subscriber that never reads neither grows the server's memory nor delays the others.
 */
import { equals } from "@bufbuild/protobuf";
import { setMaxListeners } from "node:events";
import * as v8 from "node:v8";
import * as vm from "node:vm";
import { KeyState, KeyStatusSchema, type KeyStatus } from "../../gen/ts/keypool/v1/keypool_pb";
import { poolClient, rawWatch, startWatchServer, StreamView, type Protocol, type WatchServer } from "./watch-harness";

jest.setTimeout(180_000);

function sameKeys(view: Map<string, KeyStatus>, listed: KeyStatus[]): boolean {
  return view.size === listed.length && listed.every((key) => {
    const seen = view.get(key.keyHash);
    return seen !== undefined && equals(KeyStatusSchema, seen, key);
  });
}

const OK_HEADERS = { "x-ratelimit-remaining-requests": "5", "x-ratelimit-remaining-tokens": "9000" };

describe("WatchKeys under load", () => {
  let s: WatchServer;
  afterEach(async () => {
    await s?.close();
  });

  test("500 concurrent subscribers, a burst of 10,000 leases and reports: every final view equals ListKeys", async () => {
    s = await startWatchServer({ keys: 10, hub: { coalesceMs: 100 } });
    // 450 streams over gRPC on five HTTP/2 connections, 50 over Connect on HTTP/1.1 connections.
    const clients = (["grpc", "grpc", "grpc", "grpc", "grpc"] as Protocol[]).map((p) => poolClient(s.server.url, p));
    const http1 = poolClient(s.server.url, "connect-http1");
    const controller = new AbortController();
    setMaxListeners(1000, controller.signal); // one signal cancels all 500 client calls
    const views = Array.from({ length: 500 }, () => new StreamView());
    const done = views.map((view, i) =>
      view.consume((i < 450 ? clients[i % 5]! : http1).watchKeys({}, { signal: controller.signal })),
    );
    for (const view of views) await view.until(() => view.kinds.length >= 1, 60_000);
    expect(s.hub.subscriberCount).toBe(500);

    // The burst goes straight into the pool (the load on this shared machine is the 500 streams,
    // not 20,000 unary calls), in slices spread over several coalescing windows.
    for (let slice = 0; slice < 20; slice++) {
      for (let i = 0; i < 500; i++) {
        const lease = s.pool.lease({ model: i % 2 ? "gpt-4o" : "gpt-3.5-turbo" });
        s.pool.reportRateLimit({ keyHash: lease.keyHash, statusCode: 200, headers: OK_HEADERS, leaseId: lease.leaseId });
        if (i % 4 === 0) {
          s.pool.incrementUsage({ keyHash: lease.keyHash, model: "gpt-4o", inputTokens: 100, outputTokens: 7, leaseId: lease.leaseId });
        }
      }
      await new Promise((resolve) => setTimeout(resolve, 30));
    }

    const listed = (await poolClient(s.server.url).listKeys({})).keys;
    expect(listed.reduce((n, k) => n + Number(k.leaseCount), 0)).toBe(10_000);
    for (const view of views) await view.until(() => sameKeys(view.keys, listed), 60_000);
    for (const view of views) {
      expect(view.error).toBeUndefined();
      expect(view.sequences).toEqual(view.sequences.map((_, i) => BigInt(i + 1)));
    }
    controller.abort();
    await Promise.all(done);
  });

  test("a subscriber that never reads: bounded server memory, and the others are not delayed", async () => {
    const KEYS = 50;
    s = await startWatchServer({ keys: KEYS, hub: { coalesceMs: 20 } });
    let events = 0;
    s.pool.changes.subscribe(() => void events++);

    // The stuck subscriber: a raw HTTP/2 gRPC call on its own connection, never read, so its
    // flow-control window closes and the server can no longer write to it.
    const { session, stream: stuck } = rawWatch(s.server.url);
    stuck.pause();

    const controller = new AbortController();
    const healthy = new StreamView();
    const healthyDone = healthy.consume(poolClient(s.server.url).watchKeys({}, { signal: controller.signal }));
    await healthy.until(() => healthy.kinds.length >= 1);

    v8.setFlagsFromString("--expose-gc");
    const gc = vm.runInNewContext("gc") as () => void;
    gc();
    const heapBefore = process.memoryUsage().heapUsed;

    const rpc = poolClient(s.server.url);
    let largestPending = 0;
    const latencies: number[] = [];
    for (let round = 0; round < 20; round++) {
      for (let slice = 0; slice < 5; slice++) {
        for (let i = 0; i < 200; i++) {
          const lease = s.pool.lease({ model: "gpt-4o" });
          s.pool.reportRateLimit({ keyHash: lease.keyHash, statusCode: 200, headers: OK_HEADERS, leaseId: lease.leaseId });
        }
        largestPending = Math.max(largestPending, s.hub.largestPending);
        await new Promise((resolve) => setTimeout(resolve, 10));
      }
      // How long the reading subscriber waits to see a change, while the other one is stuck.
      const target = s.keyHashes[round % KEYS]!;
      const started = performance.now();
      s.pool.disableKey(target, "disabled", `probe ${round}`);
      await healthy.until(() => healthy.keys.get(target)?.stateReason === `probe ${round}`, 10_000);
      latencies.push(performance.now() - started);
      s.pool.enableKey(target);
    }

    gc();
    const heapGrowth = process.memoryUsage().heapUsed - heapBefore;
    // The stuck watch is really backed up (it holds changes) yet holds at most one per key,
    // although the pool published far more changes than that.
    expect(events).toBeGreaterThan(10_000);
    expect(largestPending).toBeGreaterThan(0);
    expect(largestPending).toBeLessThanOrEqual(KEYS);
    expect(s.hub.largestPending).toBeLessThanOrEqual(KEYS);
    // Generous: a queue of every change for the stuck watch would hold tens of thousands of statuses.
    expect(heapGrowth).toBeLessThan(32 * 1024 * 1024);
    // Coalescing is 20 ms; a generous margin for a loaded two-core machine.
    expect(Math.max(...latencies)).toBeLessThan(2000);
    const listed = (await rpc.listKeys({})).keys;
    await healthy.until(() => sameKeys(healthy.keys, listed));
    expect(listed.find((k) => k.state !== KeyState.ACTIVE)).toBeUndefined();

    controller.abort();
    await healthyDone;
    stuck.close();
    session.destroy();
  });
});
