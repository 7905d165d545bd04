/**
 * Batched watches of one filter share one coalescing window (src/watch/watch-group.ts): a change
 * is offered to their group once, and every watch still gets each key's latest state once per
 * window, in its own sequence, after its own snapshot, whatever the other watches do.
 */
import { ManualClock } from "../../../src/domain/clock";
import { ErrorCode } from "../../../src/domain/errors";
import type { KeyStatus } from "../../../src/domain/types";
import { WatchHub, type WatchHubOptions } from "../../../src/watch/watch-hub";
import type { WatchEvent } from "../../../src/watch/watch-subscription";
import { FakePool, status } from "./fake-pool";
import { flush, Reader } from "./hub-reader";

type Changes = Extract<WatchEvent, { type: "changes" }>;

function setup(options: Partial<WatchHubOptions> = {}) {
  const clock = new ManualClock();
  const pool = new FakePool();
  const hub = new WatchHub(pool, { clock, saturated: () => false, coalesceMs: 100, ...options });
  return { clock, pool, hub };
}

/** Each `changes` message as "key=leaseCount" entries (removals as "-key"), sorted. */
const summary = (events: WatchEvent[]) =>
  (events as Changes[]).map((e) => {
    expect(e.type).toBe("changes");
    return [...e.updated.map((s: KeyStatus) => `${s.keyHash}=${s.leaseCount}`), ...e.removed.map((h) => `-${h}`)].sort();
  });

const sequences = (events: WatchEvent[]) => events.map((e) => e.sequence);

describe("batched watches of one filter share a window", () => {
  test("watches of one filter are one group; each gets every window's changes at the same times, with its own sequence", async () => {
    const { clock, pool, hub } = setup();
    for (const h of ["oai-a", "oai-b"]) pool.put(status(h));
    const a = new Reader(hub.subscribe({ provider: "openai", modelFamilies: ["turbo", "gpt4"] }, undefined, { batch: true }));
    const b = new Reader(hub.subscribe({ provider: "openai", modelFamilies: ["gpt4", "turbo"] }, undefined, { batch: true }));
    expect(hub.groupCount).toBe(1);
    // a has sent two messages more than b before the windows begin.
    await a.drain();
    clock.advance(15_000);
    expect((await a.drain()).map((e) => e.type)).toEqual(["heartbeat"]);
    await b.drain();
    pool.change("oai-a", { leaseCount: 1 }); // quiet until now: out at once
    const start = clock.now();
    const [firstA, firstB] = [await a.drain(), await b.drain()];
    expect(summary(firstA)).toEqual([["oai-a=1"]]);
    expect(summary(firstB)).toEqual([["oai-a=1"]]);
    expect(sequences(firstB)[0]).toBe(sequences(firstA)[0]! - 1);
    clock.advance(20);
    pool.change("oai-b", { leaseCount: 1 });
    pool.change("oai-a", { leaseCount: 2 });
    clock.advance(79);
    expect([...(await a.drain()), ...(await b.drain())]).toEqual([]);
    clock.advance(1);
    const [secondA, secondB] = [await a.drain(), await b.drain()];
    expect(summary(secondA)).toEqual([["oai-a=2", "oai-b=1"]]);
    expect(summary(secondB)).toEqual(summary(secondA));
    expect(secondA[0]!.time).toBe(start + 100);
    expect(secondB[0]!.time).toBe(start + 100);
    // The same status objects: read once for the group, encoded once.
    (secondA[0] as Changes).updated.forEach((s, i) => expect((secondB[0] as Changes).updated[i]).toBe(s));
    // A window with nothing due leaves the group quiet: the next change goes out at once again.
    clock.advance(100);
    expect([...(await a.drain()), ...(await b.drain())]).toEqual([]);
    clock.advance(37);
    pool.change("oai-b", { leaseCount: 2 });
    expect(summary(await a.drain())).toEqual([["oai-b=2"]]);
    expect(summary(await b.drain())).toEqual([["oai-b=2"]]);
    hub.close();
  });

  test("a watch whose client stops reading loses nothing: it gets each key's latest state once when it reads again, then follows the group's windows", async () => {
    const { clock, pool, hub } = setup();
    for (const h of ["oai-a", "oai-b", "oai-c"]) pool.put(status(h));
    const reading = new Reader(hub.subscribe({}, undefined, { batch: true }));
    const stalled = new Reader(hub.subscribe({}, undefined, { batch: true }));
    await reading.drain();
    const snapshot = await stalled.drain();
    const lastSequence = snapshot[snapshot.length - 1]!.sequence;
    // The stalled watch's consumer does not pull (its client's flow control) for four windows,
    // while the other watch keeps reading; each window changes other keys.
    const windows: [string, number][][] = [[["oai-a", 1]], [["oai-b", 1]], [["oai-a", 2], ["oai-c", 1]], [["oai-c", 2]]];
    const heard: string[][][] = [];
    // Its consumer's pending pull (left by drain) takes the first window; after that it stops asking.
    for (const window of windows) {
      for (const [h, n] of window) pool.change(h, { leaseCount: n });
      heard.push(summary(await reading.drain()));
      clock.advance(100);
    }
    heard.push(summary(await reading.drain()));
    expect(heard.flat()).toEqual([["oai-a=1"], ["oai-b=1"], ["oai-a=2", "oai-c=1"], ["oai-c=2"]]);
    expect(stalled.subscription.pendingCount).toBe(3);
    // Reading again: the first window's message, then one with every key it missed since, at its
    // latest state, each once, in sequence.
    const caughtUp = await stalled.drain();
    expect(summary(caughtUp)).toEqual([["oai-a=1"], ["oai-a=2", "oai-b=1", "oai-c=2"]]);
    expect(sequences(caughtUp)).toEqual([lastSequence + 1, lastSequence + 2]);
    expect(stalled.subscription.pendingCount).toBe(0);
    // Then it is back on the group's windows, in step with the other watch.
    pool.change("oai-b", { leaseCount: 2 });
    expect(summary(await stalled.drain())).toEqual([["oai-b=2"]]);
    expect(summary(await reading.drain())).toEqual([["oai-b=2"]]);
    clock.advance(10);
    pool.change("oai-a", { leaseCount: 3 });
    expect([...(await stalled.drain()), ...(await reading.drain())]).toEqual([]);
    clock.advance(90);
    expect(summary(await stalled.drain())).toEqual([["oai-a=3"]]);
    expect(summary(await reading.drain())).toEqual([["oai-a=3"]]);
    hub.close();
  });

  test("a watch that takes a window after one of its keys changed again sends that key's current state, and the key again at the next window", async () => {
    const { clock, pool, hub } = setup();
    for (const h of ["oai-a", "oai-b"]) pool.put(status(h));
    const a = new Reader(hub.subscribe({}, undefined, { batch: true }));
    const b = hub.subscribe({}, undefined, { batch: true });
    await a.drain();
    expect((await b.next()).value).toMatchObject({ type: "snapshot", more: false });
    pool.change("oai-a", { leaseCount: 1 });
    expect(summary(await a.drain())).toEqual([["oai-a=1"]]);
    expect(summary([(await b.next()).value as WatchEvent])).toEqual([["oai-a=1"]]);
    clock.advance(10);
    pool.change("oai-a", { leaseCount: 2 });
    pool.change("oai-b", { leaseCount: 1 });
    clock.advance(90);
    const first = await a.drain();
    expect(summary(first)).toEqual([["oai-a=2", "oai-b=1"]]);
    // After one watch took the window, before the other does.
    pool.change("oai-b", { leaseCount: 2 });
    const late = (await b.next()).value as Changes;
    expect(summary([late])).toEqual([["oai-a=2", "oai-b=2"]]);
    expect(late.updated[0]).toBe((first[0] as Changes).updated[0]);
    clock.advance(100);
    expect(summary(await a.drain())).toEqual([["oai-b=2"]]);
    expect(summary([(await b.next()).value as WatchEvent])).toEqual([["oai-b=2"]]);
    hub.close();
  });

  test("a watch that opens within a window is not sent the window's changes from before it opened (its snapshot has them), only those after", async () => {
    const { clock, pool, hub } = setup();
    for (const h of ["oai-a", "oai-b"]) pool.put(status(h));
    const early = new Reader(hub.subscribe({}, undefined, { batch: true }));
    await early.drain();
    clock.advance(2_000); // the early watch's snapshot slice is stale by now: the late one gets a fresh one
    pool.change("oai-a", { leaseCount: 1 });
    expect(summary(await early.drain())).toEqual([["oai-a=1"]]);
    clock.advance(10);
    pool.change("oai-a", { leaseCount: 2 }); // within the window, before the late watch opens
    const late = new Reader(hub.subscribe({}, undefined, { batch: true }));
    const snapshot = (await late.drain()) as Extract<WatchEvent, { type: "snapshot" }>[];
    expect(snapshot.flatMap((e) => e.keys.map((s) => `${s.keyHash}=${s.leaseCount}`))).toEqual(["oai-a=2", "oai-b=0"]);
    clock.advance(10);
    pool.change("oai-b", { leaseCount: 1 }); // within the window, after it opened
    clock.advance(80);
    expect(summary(await early.drain())).toEqual([["oai-a=2", "oai-b=1"]]);
    expect(summary(await late.drain())).toEqual([["oai-b=1"]]);
    hub.close();
  });

  test("a watch leaving does not disturb the others; the group goes when its last watch does", async () => {
    const { clock, pool, hub } = setup();
    for (const h of ["oai-a", "oai-b"]) pool.put(status(h));
    const abort = new AbortController();
    const leaving = new Reader(hub.subscribe({}, abort.signal, { batch: true }));
    const staying = new Reader(hub.subscribe({}, undefined, { batch: true }));
    await leaving.drain();
    await staying.drain();
    pool.change("oai-a", { leaseCount: 1 });
    // The leaving watch's pending pull is woken first and closes the window's set; then it goes.
    expect(summary(await leaving.drain())).toEqual([["oai-a=1"]]);
    clock.advance(50);
    pool.change("oai-b", { leaseCount: 1 });
    abort.abort();
    expect(await leaving.poll()).toBe("done");
    expect(hub.subscriberCount).toBe(1);
    expect(hub.groupCount).toBe(1);
    expect(summary(await staying.drain())).toEqual([["oai-a=1"]]);
    clock.advance(50);
    expect(summary(await staying.drain())).toEqual([["oai-b=1"]]);
    staying.subscription.close();
    expect(hub.groupCount).toBe(0);
    expect(hub.indexedCount).toBe(0);
    expect(hub.timerCount).toBe(0);
    // Nothing is left behind: a new watch starts a new group, on a quiet window.
    const next = new Reader(hub.subscribe({}, undefined, { batch: true }));
    await next.drain();
    clock.advance(10);
    pool.change("oai-a", { leaseCount: 2 });
    expect(summary(await next.drain())).toEqual([["oai-a=2"]]);
    hub.close();
  });

  test("watches whose filters differ are separate groups, each on its own window", async () => {
    const { clock, pool, hub } = setup();
    for (const h of ["oai-a", "ant-b"]) pool.put(status(h));
    const openai = new Reader(hub.subscribe({ provider: "openai" }, undefined, { batch: true }));
    const anthropic = new Reader(hub.subscribe({ provider: "anthropic" }, undefined, { batch: true }));
    const turbo = new Reader(hub.subscribe({ modelFamilies: ["turbo"] }, undefined, { batch: true }));
    expect(hub.groupCount).toBe(3);
    for (const r of [openai, anthropic, turbo]) await r.drain();
    pool.change("oai-a", { leaseCount: 1 });
    expect(summary(await openai.drain())).toEqual([["oai-a=1"]]);
    expect(summary(await turbo.drain())).toEqual([["oai-a=1"]]);
    expect(await anthropic.drain()).toEqual([]);
    // The openai groups' windows are open; the anthropic group's is not: its change goes out at once.
    clock.advance(30);
    pool.change("ant-b", { leaseCount: 1 });
    pool.change("oai-a", { leaseCount: 2 });
    expect(summary(await anthropic.drain())).toEqual([["ant-b=1"]]);
    expect([...(await openai.drain()), ...(await turbo.drain())]).toEqual([]);
    clock.advance(70);
    expect(summary(await openai.drain())).toEqual([["oai-a=2"]]);
    expect(summary(await turbo.drain())).toEqual([["oai-a=2"]]);
    // A key that moves out of a filter is a removal for that group's watches only.
    pool.change("oai-a", { modelFamilies: ["gpt4"] });
    clock.advance(100);
    expect(summary(await turbo.drain())).toEqual([["-oai-a"]]);
    expect(summary(await openai.drain())).toEqual([["oai-a=2"]]);
    hub.close();
  });

  test("watches without batch keep their own per-key windows beside a group of the same filter", async () => {
    const { clock, pool, hub } = setup();
    for (const h of ["oai-a", "oai-b"]) pool.put(status(h));
    const single = new Reader(hub.subscribe({}, undefined, {}));
    const batched = new Reader(hub.subscribe({}, undefined, { batch: true }));
    expect(hub.groupCount).toBe(1);
    await single.drain();
    await batched.drain();
    pool.change("oai-a", { leaseCount: 1 });
    expect((await single.drain()).map((e) => e.type)).toEqual(["updated"]);
    expect(summary(await batched.drain())).toEqual([["oai-a=1"]]);
    clock.advance(40);
    // Another key's first change: at once for the per-key watch, at the window's end for the batch.
    pool.change("oai-b", { leaseCount: 1 });
    const b = await single.drain();
    expect(b.map((e) => (e.type === "updated" ? `${e.status.keyHash}=${e.status.leaseCount}` : e.type))).toEqual(["oai-b=1"]);
    expect(await batched.drain()).toEqual([]);
    clock.advance(60);
    expect(summary(await batched.drain())).toEqual([["oai-b=1"]]);
    hub.close();
  });

  test("removed keys' slots are reclaimed with groups too: batched watches still owing removals when slots run short end with UNAVAILABLE, and a new watch starts clean", async () => {
    const { clock, pool, hub } = setup();
    pool.put(status("oai-keep"));
    const reading = new Reader(hub.subscribe({}, undefined, { batch: true }));
    await reading.drain();
    const stuck = hub.subscribe({}, undefined, { batch: true });
    await stuck.next(); // the snapshot, then it never reads again
    for (let i = 0; i < 3000; i++) pool.put(status(`oai-more-${i}`));
    clock.advance(100);
    const added = (await reading.drain()) as Changes[];
    expect(new Set(added.flatMap((e) => e.updated.map((s) => s.keyHash))).size).toBe(3000);
    // Removed within one window: both watches owe these removals when the slots run short (the
    // reading one until the window ends), so both end, and their clients start again from a snapshot.
    for (let i = 0; i < 3000; i++) pool.remove(`oai-more-${i}`);
    await expect(stuck.next()).rejects.toMatchObject({ code: ErrorCode.Unavailable, message: expect.stringMatching(/fell too far behind/) });
    await expect(reading.drain()).rejects.toMatchObject({ code: ErrorCode.Unavailable });
    expect(hub.slotCount).toBeLessThan(4000);
    expect(hub.groupCount).toBe(0);
    const next = new Reader(hub.subscribe({}, undefined, { batch: true }));
    const snapshot = (await next.drain()) as Extract<WatchEvent, { type: "snapshot" }>[];
    expect(snapshot.flatMap((e) => e.keys.map((s) => s.keyHash))).toEqual(["oai-keep"]);
    clock.advance(100);
    pool.change("oai-keep", { leaseCount: 5 });
    expect(summary(await next.drain())).toEqual([["oai-keep=5"]]);
    hub.close();
  });

  test("while the server is saturated, the first change after a quiet window waits for the end of the window it opens", async () => {
    let saturated = false;
    const { clock, pool, hub } = setup({ saturated: () => saturated });
    pool.put(status("oai-a"));
    const a = new Reader(hub.subscribe({}, undefined, { batch: true }));
    const b = new Reader(hub.subscribe({}, undefined, { batch: true }));
    await a.drain();
    await b.drain();
    saturated = true;
    pool.change("oai-a", { leaseCount: 1 });
    expect([...(await a.drain()), ...(await b.drain())]).toEqual([]);
    clock.advance(99);
    expect([...(await a.drain()), ...(await b.drain())]).toEqual([]);
    clock.advance(1);
    expect(summary(await a.drain())).toEqual([["oai-a=1"]]);
    expect(summary(await b.drain())).toEqual([["oai-a=1"]]);
    hub.close();
  });
  test("when a window ends, its waiting watches are woken in the window timer's turn, before the calls of the next turn", async () => {
    // Deferred waking (the hub's default: after the pool's turn) never runs here unless run by hand.
    const deferred: (() => void)[] = [];
    const { clock, pool, hub } = setup({ defer: (callback) => void deferred.push(callback) });
    pool.put(status("oai-a"));
    const watches = [hub.subscribe({}, undefined, { batch: true }), hub.subscribe({}, undefined, { batch: true })];
    for (const watch of watches) expect((await watch.next()).value).toMatchObject({ type: "snapshot" });
    // The first change after a quiet window goes out after the pool's turn, and opens a window.
    const first = watches.map((watch) => watch.next());
    pool.change("oai-a", { leaseCount: 1 });
    await flush();
    expect(deferred.length).toBeGreaterThan(0);
    while (deferred.length > 0) deferred.shift()!();
    for (const message of first) expect(summary([(await message).value as WatchEvent])).toEqual([["oai-a=1"]]);
    // A change within that window goes out when the window's timer ends it, in that turn.
    let arrived = 0;
    const second = watches.map((watch) => watch.next().then((result) => (arrived++, result)));
    pool.change("oai-a", { leaseCount: 2 });
    clock.advance(99);
    await flush();
    expect(arrived).toBe(0);
    clock.advance(1);
    await flush();
    expect(arrived).toBe(2);
    for (const message of second) expect(summary([(await message).value as WatchEvent])).toEqual([["oai-a=2"]]);
    hub.close();
  });
});
