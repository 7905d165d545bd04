import fc from "fast-check";
import { ManualClock } from "../../../src/domain/clock";
import { ErrorCode, PoolError } from "../../../src/domain/errors";
import type { KeyStatus } from "../../../src/domain/types";
import { WatchHub } from "../../../src/watch/watch-hub";
import type { WatchEvent, WatchSubscription } from "../../../src/watch/watch-subscription";
import { FakePool, status } from "./fake-pool";
import { flush, Reader } from "./hub-reader";

function setup(
  options: { coalesceMs?: number; heartbeatMs?: number; maxSubscribers?: number; saturated?: () => boolean; defer?: (callback: () => void) => void } = {},
) {
  const clock = new ManualClock();
  const pool = new FakePool();
  const hub = new WatchHub(pool, { clock, saturated: () => false, ...options });
  return { clock, pool, hub };
}

const summary = (e: WatchEvent) =>
  e.type === "snapshot"
    ? `snapshot ${e.keys.map((k) => k.keyHash).join(",")}`
    : e.type === "updated"
      ? `updated ${e.status.keyHash} leases=${e.status.leaseCount}`
      : e.type === "removed"
        ? `removed ${e.keyHash}`
        : "heartbeat";

describe("WatchHub", () => {
  test("a subscriber gets the snapshot, then exactly the coalesced changes", async () => {
    const { clock, pool, hub } = setup();
    pool.put(status("oai-b"));
    pool.put(status("oai-a"));
    const reader = new Reader(hub.subscribe());

    const snapshot = await reader.poll();
    expect(snapshot).toMatchObject({ type: "snapshot", sequence: 1 });
    expect(summary(snapshot as WatchEvent)).toBe("snapshot oai-a,oai-b");
    expect(await reader.poll()).toBeUndefined();

    // A key's first change after a quiet window goes out at once: no waiting for the window.
    const start = clock.now();
    pool.change("oai-a", { leaseCount: 1 });
    const first = await reader.poll();
    expect(first).toMatchObject({ type: "updated", sequence: 2, time: start });
    expect(summary(first as WatchEvent)).toBe("updated oai-a leases=1");

    // Further changes within the window that send opened: held and merged, then exactly one
    // message with the latest state when the window ends.
    clock.advance(40);
    pool.change("oai-a", { leaseCount: 2 });
    clock.advance(50);
    pool.change("oai-a", { leaseCount: 3 });
    expect(await reader.poll()).toBeUndefined();
    clock.advance(9);
    expect(await reader.poll()).toBeUndefined();
    clock.advance(1);
    const merged = await reader.poll();
    expect(merged).toMatchObject({ type: "updated", sequence: 3, time: start + 100 });
    expect(summary(merged as WatchEvent)).toBe("updated oai-a leases=3");
    expect(await reader.poll()).toBeUndefined();

    // That message opened a new window: a change within it waits for its end.
    clock.advance(30);
    pool.change("oai-a", { leaseCount: 4 });
    clock.advance(69);
    expect(await reader.poll()).toBeUndefined();
    clock.advance(1);
    expect(await reader.poll()).toMatchObject({ type: "updated", sequence: 4, time: start + 200 });
    expect(hub.pendingCount).toBe(0);

    // A window with no change in it ends quietly; the next change goes out at once again.
    clock.advance(100);
    expect(await reader.poll()).toBeUndefined();
    clock.advance(50);
    pool.change("oai-a", { leaseCount: 5 });
    const quiet = await reader.poll();
    expect(quiet).toMatchObject({ type: "updated", sequence: 5, time: start + 350 });
    expect(summary(quiet as WatchEvent)).toBe("updated oai-a leases=5");
    expect(await reader.poll()).toBeUndefined();
  });

  test("each key has its own window; held keys go out in the order their windows end", async () => {
    const { clock, pool, hub } = setup();
    pool.put(status("oai-a"));
    pool.put(status("oai-b"));
    const reader = new Reader(hub.subscribe());
    await reader.poll();
    const start = clock.now();
    pool.change("oai-b", { leaseCount: 1 });
    expect((await reader.drain()).map(summary)).toEqual(["updated oai-b leases=1"]);
    clock.advance(30);
    // oai-a is quiet: at once; oai-b was sent 30 ms ago: held until start + 100.
    pool.change("oai-a", { leaseCount: 1 });
    pool.change("oai-b", { leaseCount: 2 });
    expect((await reader.drain()).map(summary)).toEqual(["updated oai-a leases=1"]);
    clock.advance(30);
    pool.change("oai-a", { leaseCount: 2 }); // held until start + 130
    pool.change("oai-b", { leaseCount: 3 });
    expect(await reader.drain()).toEqual([]);
    expect(hub.pendingCount).toBe(2);
    clock.advance(39);
    expect(await reader.drain()).toEqual([]);
    clock.advance(1);
    const b = await reader.drain();
    expect(b.map(summary)).toEqual(["updated oai-b leases=3"]);
    expect(b[0]!.time).toBe(start + 100);
    clock.advance(29);
    expect(await reader.drain()).toEqual([]);
    clock.advance(1);
    const a = await reader.drain();
    expect(a.map(summary)).toEqual(["updated oai-a leases=2"]);
    expect(a[0]!.time).toBe(start + 130);
    expect(hub.pendingCount).toBe(0);
  });

  test("a consumer that is late gets everything due, including the changes its windows held", async () => {
    const { clock, pool, hub } = setup();
    pool.put(status("oai-a"));
    pool.put(status("oai-b"));
    const subscription = hub.subscribe();
    const reader = new Reader(subscription);
    await reader.poll();
    pool.change("oai-a", { leaseCount: 1 });
    expect((await reader.drain()).map(summary)).toEqual(["updated oai-a leases=1"]);
    // The consumer is away: oai-a (in its window) is held, oai-b is due at once; the call left
    // waiting takes oai-b, and oai-a's window ends while nobody pulls.
    pool.change("oai-a", { leaseCount: 2 });
    clock.advance(10);
    pool.change("oai-b", { leaseCount: 1 });
    clock.advance(500);
    expect(subscription.pendingCount).toBe(1);
    expect((await reader.drain()).map(summary)).toEqual(["updated oai-b leases=1", "updated oai-a leases=2"]);
    // A window opens when its message is taken: oai-b's (taken 500 ms ago) is over, oai-a's
    // (taken just now) is not.
    pool.change("oai-a", { leaseCount: 3 });
    pool.change("oai-b", { leaseCount: 2 });
    expect((await reader.drain()).map(summary)).toEqual(["updated oai-b leases=2"]);
    clock.advance(99);
    expect(await reader.drain()).toEqual([]);
    clock.advance(1);
    expect((await reader.drain()).map(summary)).toEqual(["updated oai-a leases=3"]);
  });

  test("while the server is saturated, a key's first change waits for the end of the window it opens", async () => {
    let saturated = false;
    const { clock, pool, hub } = setup({ saturated: () => saturated });
    pool.put(status("oai-a"));
    const reader = new Reader(hub.subscribe());
    await reader.poll();
    saturated = true;
    const start = clock.now();
    pool.change("oai-a", { leaseCount: 1 });
    clock.advance(60);
    pool.change("oai-a", { leaseCount: 2 });
    clock.advance(39);
    expect(await reader.poll()).toBeUndefined();
    clock.advance(1);
    const merged = await reader.poll();
    expect(merged).toMatchObject({ type: "updated", time: start + 100 });
    expect(summary(merged as WatchEvent)).toBe("updated oai-a leases=2");
    expect(await reader.poll()).toBeUndefined();
    // Time to spare again: the next quiet change goes out at once.
    saturated = false;
    clock.advance(200);
    pool.change("oai-a", { leaseCount: 3 });
    expect(await reader.poll()).toMatchObject({ type: "updated", time: start + 300 });
    expect(hub.pendingCount).toBe(0);
  });

  test("waking is deferred past the pool's turn: the changes of one turn reach a waiting watch together", async () => {
    const deferred: (() => void)[] = [];
    const { pool, hub } = setup({ defer: (callback) => void deferred.push(callback) });
    pool.put(status("oai-a"));
    pool.put(status("oai-b"));
    const subscription = hub.subscribe();
    await subscription.next();
    const waiting = subscription.next();
    let arrived = false;
    void waiting.then(() => (arrived = true));
    pool.change("oai-a", { leaseCount: 1 });
    pool.change("oai-b", { leaseCount: 1 });
    await flush();
    expect(arrived).toBe(false);
    expect(deferred).toHaveLength(1); // one wake-up for the turn, whatever the number of changes
    deferred.shift()!();
    expect(summary((await waiting).value as WatchEvent)).toBe("updated oai-a leases=1");
    expect(summary((await subscription.next()).value as WatchEvent)).toBe("updated oai-b leases=1");
  });

  test("a subscriber that does not read holds one pending change per key, whatever the time", async () => {
    const { clock, pool, hub } = setup();
    for (const h of ["oai-1", "oai-2", "oai-3"]) pool.put(status(h));
    const reader = new Reader(hub.subscribe());
    await reader.poll(); // the snapshot; then the consumer stops pulling
    await reader.poll(); // one call waiting, as an HTTP/2 writer blocked on flow control would leave it
    for (let i = 1; i <= 3000; i++) {
      pool.change(`oai-${(i % 3) + 1}`, { leaseCount: i });
      clock.advance(7);
    }
    expect(hub.pendingCount).toBeLessThanOrEqual(3);
    expect(hub.timerCount).toBeLessThanOrEqual(1);
  });

  test("a consumer that comes back after a long pause gets the latest state of each key once", async () => {
    const { clock, pool, hub } = setup();
    for (const h of ["oai-1", "oai-2", "oai-3"]) pool.put(status(h));
    const subscription = hub.subscribe();
    const reader = new Reader(subscription);
    await reader.poll();
    for (let i = 1; i <= 3000; i++) {
      pool.change(`oai-${(i % 3) + 1}`, { leaseCount: i });
      clock.advance(7);
    }
    expect(subscription.pendingCount).toBe(3);
    const events = await reader.drain();
    expect(events.map(summary).sort()).toEqual([
      "updated oai-1 leases=3000",
      "updated oai-2 leases=2998",
      "updated oai-3 leases=2999",
    ]);
    expect(events.map((e) => e.sequence)).toEqual([2, 3, 4]);
  });

  test("heartbeats come after the configured silence, and any message restarts the silence", async () => {
    const { clock, pool, hub } = setup({ heartbeatMs: 15_000 });
    pool.put(status("oai-a"));
    const reader = new Reader(hub.subscribe());
    await reader.poll();
    clock.advance(14_999);
    expect(await reader.poll()).toBeUndefined();
    clock.advance(1);
    expect(await reader.poll()).toMatchObject({ type: "heartbeat", sequence: 2 });

    clock.advance(10_000);
    pool.change("oai-a", { leaseCount: 1 });
    clock.advance(100);
    expect(await reader.poll()).toMatchObject({ type: "updated", sequence: 3 });
    clock.advance(14_999);
    expect(await reader.poll()).toBeUndefined();
    clock.advance(1);
    expect(await reader.poll()).toMatchObject({ type: "heartbeat", sequence: 4 });
    clock.advance(15_000);
    expect(await reader.poll()).toMatchObject({ type: "heartbeat", sequence: 5 });
  });

  test("filters: provider, and families where a key matches if it serves any", async () => {
    const { clock, pool, hub } = setup();
    pool.put(status("oai-a", { modelFamilies: ["turbo"] }));
    pool.put(status("oai-b", { modelFamilies: ["gpt4o", "turbo"] }));
    pool.put(status("ant-c", { modelFamilies: ["claude"] }));
    const anthropic = new Reader(hub.subscribe({ provider: "anthropic" }));
    const gpt4o = new Reader(hub.subscribe({ modelFamilies: ["gpt4o", "claude"] }));
    const openaiTurbo = new Reader(hub.subscribe({ provider: "openai", modelFamilies: ["turbo"] }));
    expect(summary((await anthropic.poll()) as WatchEvent)).toBe("snapshot ant-c");
    expect(summary((await gpt4o.poll()) as WatchEvent)).toBe("snapshot ant-c,oai-b");
    expect(summary((await openaiTurbo.poll()) as WatchEvent)).toBe("snapshot oai-a,oai-b");

    pool.change("oai-a", { leaseCount: 1 });
    pool.change("oai-b", { leaseCount: 1 });
    pool.change("ant-c", { leaseCount: 1 });
    pool.put(status("ant-d", { modelFamilies: ["claude-opus"] }));
    clock.advance(100);
    // Which keys each watch hears of; a message lists its keys in the hub's slot order.
    const heard = async (reader: Reader) => (await reader.drain()).map(summary).sort();
    expect(await heard(anthropic)).toEqual(["updated ant-c leases=1", "updated ant-d leases=0"]);
    expect(await heard(gpt4o)).toEqual(["updated ant-c leases=1", "updated oai-b leases=1"]);
    expect(await heard(openaiTurbo)).toEqual(["updated oai-a leases=1", "updated oai-b leases=1"]);
  });

  test("a key that stops matching the filter is removed for that subscriber, and comes back when it matches", async () => {
    const { clock, pool, hub } = setup();
    pool.put(status("oai-a", { modelFamilies: ["gpt4o"] }));
    const reader = new Reader(hub.subscribe({ modelFamilies: ["gpt4o"] }));
    await reader.poll();
    pool.change("oai-a", { modelFamilies: ["turbo"] });
    clock.advance(100);
    expect((await reader.drain()).map(summary)).toEqual(["removed oai-a"]);
    pool.change("oai-a", { leaseCount: 5 }); // still out of the filter: nothing
    clock.advance(100);
    expect(await reader.drain()).toEqual([]);
    pool.change("oai-a", { modelFamilies: ["turbo", "gpt4o"] });
    clock.advance(100);
    expect((await reader.drain()).map(summary)).toEqual(["updated oai-a leases=5"]);
  });

  test("removal: a known key is removed; a key added and removed within one window is never mentioned", async () => {
    const { clock, pool, hub } = setup();
    pool.put(status("oai-a"));
    pool.put(status("oai-b"));
    const reader = new Reader(hub.subscribe());
    await reader.poll();

    pool.remove("oai-a");
    pool.put(status("oai-new"));
    pool.remove("oai-new");
    pool.remove("oai-b");
    pool.put(status("oai-b", { leaseCount: 9 })); // removed and back within the window: its new status
    clock.advance(100);
    expect((await reader.drain()).map(summary)).toEqual(["removed oai-a", "updated oai-b leases=9"]);
    expect(reader.subscription.pendingCount).toBe(0);
  });

  test("an aborted subscriber is dropped at once with everything it held", async () => {
    const { clock, pool, hub } = setup();
    pool.put(status("oai-a"));
    const controller = new AbortController();
    const reader = new Reader(hub.subscribe({ modelFamilies: ["gpt4"] }, controller.signal));
    await reader.poll();
    pool.change("oai-a", { leaseCount: 1 });
    expect(summary((await reader.poll()) as WatchEvent)).toBe("updated oai-a leases=1"); // at once
    pool.change("oai-a", { leaseCount: 2 }); // within the window that send opened: held
    expect(await reader.poll()).toBeUndefined(); // waiting, with a timer and a pending change
    expect(hub.timerCount).toBe(1);
    expect(hub.pendingCount).toBe(1);

    controller.abort();
    expect(await reader.poll()).toBe("done");
    expect(hub.subscriberCount).toBe(0);
    expect(hub.signalListenerCount).toBe(0);
    expect(hub.indexedCount).toBe(0);
    expect(hub.pendingCount).toBe(0);
    expect(clock.pendingTimers()).toBe(0);
    expect(pool.changes.size).toBe(1); // the hub's one listener, shared by every watch
    pool.change("oai-a", { leaseCount: 3 });
    expect(clock.pendingTimers()).toBe(0);
    clock.advance(1000);
    expect(clock.pendingTimers()).toBe(0);
  });

  test("1,000 subscribe-and-abort cycles leave nothing behind", async () => {
    const { clock, pool, hub } = setup();
    pool.put(status("oai-a"));
    for (let i = 0; i < 1000; i++) {
      const controller = new AbortController();
      const subscription = hub.subscribe(i % 2 ? { provider: "openai" } : { modelFamilies: ["turbo"] }, controller.signal);
      await subscription.next(); // the snapshot
      pool.change("oai-a", { leaseCount: 2 * i });
      await subscription.next(); // that change, at once
      const waiting = subscription.next();
      pool.change("oai-a", { leaseCount: 2 * i + 1 }); // held for the window, with a timer
      controller.abort();
      expect(await waiting).toEqual({ done: true, value: undefined });
    }
    expect(hub.subscriberCount).toBe(0);
    expect(hub.signalListenerCount).toBe(0);
    expect(hub.indexedCount).toBe(0);
    expect(clock.pendingTimers()).toBe(0);
    expect(pool.changes.size).toBe(1);
  });

  test("a signal that is already aborted gives a finished watch", async () => {
    const { hub } = setup();
    const subscription = hub.subscribe({}, AbortSignal.abort());
    expect(await subscription.next()).toEqual({ done: true, value: undefined });
    expect(hub.subscriberCount).toBe(0);
    expect(hub.signalListenerCount).toBe(0);
  });

  test("return() (a consumer's break) drops the watch too", async () => {
    const { pool, hub } = setup();
    pool.put(status("oai-a"));
    for await (const event of hub.subscribe()) {
      expect(event.type).toBe("snapshot");
      break;
    }
    expect(hub.subscriberCount).toBe(0);
    expect(hub.indexedCount).toBe(0);
  });

  test("past maxSubscribers, subscribe is RESOURCE_EXHAUSTED until a watch closes", () => {
    const { hub } = setup({ maxSubscribers: 2 });
    const first = hub.subscribe();
    hub.subscribe();
    expect(() => hub.subscribe()).toThrow(PoolError);
    try {
      hub.subscribe();
    } catch (error) {
      expect((error as PoolError).code).toBe(ErrorCode.ResourceExhausted);
      expect((error as PoolError).message).toMatch(/too many WatchKeys streams are open.*2/);
    }
    first.close();
    expect(() => hub.subscribe()).not.toThrow();
  });

  test("close() ends every watch with UNAVAILABLE and stops listening to the pool", async () => {
    const { clock, pool, hub } = setup();
    pool.put(status("oai-a"));
    const waiting = new Reader(hub.subscribe());
    await waiting.poll();
    expect(await waiting.poll()).toBeUndefined();
    const unread = hub.subscribe();
    hub.close();
    await expect(waiting.poll()).rejects.toMatchObject({ code: ErrorCode.Unavailable });
    await expect(unread.next()).rejects.toMatchObject({ code: ErrorCode.Unavailable });
    expect(() => hub.subscribe()).toThrow(expect.objectContaining({ code: ErrorCode.Unavailable }));
    expect(pool.changes.size).toBe(0);
    expect(hub.subscriberCount).toBe(0);
    expect(clock.pendingTimers()).toBe(0);
  });

  test("a change visits only the watches whose filter can match the key", () => {
    const { pool, hub } = setup();
    pool.put(status("oai-a", { modelFamilies: ["turbo"] }));
    const others = Array.from({ length: 200 }, (_, i) =>
      hub.subscribe(i % 2 ? { provider: "anthropic" } : { modelFamilies: ["gpt4o"] }),
    );
    const interested = hub.subscribe({ modelFamilies: ["turbo"] });
    pool.change("oai-a", { leaseCount: 1 });
    expect(others.every((s) => s.visitStamp === 0)).toBe(true);
    expect(interested.visitStamp).not.toBe(0);
  });

  test("coalesce window 0 delivers each change as soon as it is pulled", async () => {
    const { pool, hub } = setup({ coalesceMs: 0 });
    pool.put(status("oai-a"));
    const reader = new Reader(hub.subscribe());
    await reader.poll();
    expect(await reader.poll()).toBeUndefined();
    pool.change("oai-a", { leaseCount: 1 });
    expect(summary((await reader.poll()) as WatchEvent)).toBe("updated oai-a leases=1");
  });

  test("property: after any history, a drained subscriber's view equals listKeys for its filter", async () => {
    const hashes = ["oai-a", "oai-b", "oai-c", "ant-d", "ant-e"];
    const families = ["turbo", "gpt4", "gpt4o", "claude"];
    const op = fc.oneof(
      fc.record({ kind: fc.constant("put" as const), key: fc.constantFrom(...hashes), fams: fc.subarray(families, { minLength: 1 }), n: fc.nat(100) }),
      fc.record({ kind: fc.constant("remove" as const), key: fc.constantFrom(...hashes) }),
      fc.record({ kind: fc.constant("advance" as const), ms: fc.integer({ min: 0, max: 250 }) }),
      fc.record({ kind: fc.constant("pull" as const), count: fc.integer({ min: 0, max: 3 }) }),
    );
    const filter = fc.record({
      provider: fc.constantFrom(undefined, "openai" as const, "anthropic" as const),
      modelFamilies: fc.subarray(families),
    });
    await fc.assert(
      fc.asyncProperty(filter, fc.array(op, { maxLength: 60 }), async (f, ops) => {
        const { clock, pool, hub } = setup({ heartbeatMs: 1000 });
        const present = new Set<string>();
        const reader = new Reader(hub.subscribe(f));
        const view = new Map<string, KeyStatus>();
        let lastSequence = 0;
        const apply = (events: WatchEvent[]) => {
          for (const e of events) {
            expect(e.sequence).toBe(lastSequence + 1);
            lastSequence = e.sequence;
            if (e.type === "snapshot") for (const k of e.keys) view.set(k.keyHash, k);
            if (e.type === "updated") view.set(e.status.keyHash, e.status);
            if (e.type === "removed") {
              expect(view.has(e.keyHash)).toBe(true);
              view.delete(e.keyHash);
            }
          }
        };
        for (const o of ops) {
          if (o.kind === "put") {
            pool.put(status(o.key, { modelFamilies: o.fams, leaseCount: o.n }));
            present.add(o.key);
          } else if (o.kind === "remove") {
            if (present.delete(o.key)) pool.remove(o.key);
          } else if (o.kind === "advance") {
            clock.advance(o.ms);
          } else {
            for (let i = 0; i < o.count; i++) {
              const e = await reader.poll();
              if (e === undefined) break;
              if (e !== "done") apply([e]);
            }
          }
        }
        clock.advance(100);
        apply(await reader.drain());
        expect(reader.subscription.pendingCount).toBe(0);
        const expected = pool.listKeys({ provider: f.provider, modelFamilies: f.modelFamilies });
        expect([...view.values()].sort((a, b) => (a.keyHash < b.keyHash ? -1 : 1))).toEqual(expected);
        hub.close();
      }),
      { numRuns: 150 },
    );
  });
});
