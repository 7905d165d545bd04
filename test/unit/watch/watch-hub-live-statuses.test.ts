/**
 * The hub keeps no status per key: it reads a key's current status from the pool when a watch
 * sends it, shares what it read among the watches sending the same change, and holds at most its
 * bounded status cache whatever the number of keys and changes.
 */
import { ManualClock } from "../../../src/domain/clock";
import { KeyPool } from "../../../src/domain/key-pool";
import type { KeyStatus } from "../../../src/domain/types";
import { WatchHub } from "../../../src/watch/watch-hub";
import type { WatchEvent } from "../../../src/watch/watch-subscription";
import { FakePool, status } from "./fake-pool";
import { Reader } from "./hub-reader";

const hashes = (n: number) => Array.from({ length: n }, (_, i) => `oai-${String(i).padStart(4, "0")}`);
const sent = (events: WatchEvent[]): KeyStatus[] =>
  events.flatMap((e) => (e.type === "updated" ? [e.status] : e.type === "changes" ? e.updated : []));

describe("WatchHub reads statuses from the pool when it sends", () => {
  test("changes that no watch sends read nothing and leave nothing behind", async () => {
    const clock = new ManualClock();
    const pool = new FakePool();
    for (const h of hashes(500)) pool.put(status(h));
    const hub = new WatchHub(pool, { clock, saturated: () => false });
    // A watch whose client took its snapshot and stopped reading.
    const idle = new Reader(hub.subscribe({}, undefined, { batch: true }));
    await idle.drain();
    const cachedAfterSnapshot = hub.cachedStatusCount;
    pool.reads = 0;
    for (let round = 1; round <= 3; round++) for (const h of hashes(500)) pool.change(h, { leaseCount: round });
    expect(pool.reads).toBe(0);
    expect(hub.cachedStatusCount).toBe(cachedAfterSnapshot);
    // The watch owes its client every key, and sends each one's latest status when it reads.
    clock.advance(100);
    const statuses = sent(await idle.drain());
    expect(statuses).toHaveLength(500);
    expect(statuses.every((s) => s.leaseCount === 3)).toBe(true);
    hub.close();
  });

  test("the watches that send one change share one status, read once", async () => {
    const clock = new ManualClock();
    const pool = new FakePool();
    pool.put(status("oai-a"));
    const hub = new WatchHub(pool, { clock, saturated: () => false });
    const readers = Array.from({ length: 50 }, (_, i) => new Reader(hub.subscribe({}, undefined, { batch: i % 2 === 0 })));
    for (const reader of readers) await reader.drain();
    pool.reads = 0;
    pool.change("oai-a", { leaseCount: 7 });
    const received = (await Promise.all(readers.map((r) => r.drain()))).map(sent);
    expect(received.every((statuses) => statuses.length === 1)).toBe(true);
    const first = received[0]![0]!;
    expect(first.leaseCount).toBe(7);
    expect(received.every((statuses) => statuses[0] === first)).toBe(true);
    expect(pool.reads).toBe(1);
    hub.close();
  });

  test("the status cache is bounded; a status it no longer holds is read again, current", async () => {
    const clock = new ManualClock();
    const pool = new FakePool();
    for (const h of hashes(40)) pool.put(status(h));
    const hub = new WatchHub(pool, { clock, saturated: () => false, statusCacheSize: 8 });
    const a = new Reader(hub.subscribe({}, undefined, { batch: true }));
    // b takes its snapshot and does not ask for more until later.
    const b = hub.subscribe({}, undefined, { batch: true });
    await a.drain();
    expect((await b.next()).value).toMatchObject({ type: "snapshot", more: false });
    expect(hub.cachedStatusCount).toBeLessThanOrEqual(8);
    pool.reads = 0;
    for (const h of hashes(40)) pool.change(h, { leaseCount: 1 });
    expect(sent(await a.drain())).toHaveLength(40);
    expect(pool.reads).toBe(40);
    expect(hub.cachedStatusCount).toBe(8);
    pool.change("oai-0000", { leaseCount: 2 });
    const fromB = sent([(await b.next()).value as WatchEvent]);
    expect(fromB.map((s) => [s.keyHash, s.leaseCount])).toEqual(hashes(40).map((h) => [h, h === "oai-0000" ? 2 : 1]));
    // b shares what a read and is still cached, and reads the rest again.
    expect(pool.reads).toBeGreaterThan(40);
    expect(pool.reads).toBeLessThanOrEqual(80);
    expect(hub.cachedStatusCount).toBe(8);
    b.close();
    hub.close();
  });

  test("over a KeyPool, a watch gets each key's current status, and the statuses are never changed after", async () => {
    const clock = new ManualClock();
    const pool = new KeyPool({ clock, reuseDelayMs: 0 });
    pool.addKeys(Array.from({ length: 20 }, (_, i) => ({ provider: "openai" as const, key: `sk-live-${i}` })));
    const hub = new WatchHub(pool, { clock, saturated: () => false, coalesceMs: 100 });
    const reader = new Reader(hub.subscribe({}, undefined, { batch: true }));
    await reader.drain();
    const byHash = (list: KeyStatus[]) => [...list].sort((x, y) => (x.keyHash < y.keyHash ? -1 : 1));
    const lease = (n: number) => {
      for (let i = 0; i < n; i++) {
        pool.lease({ model: "gpt-4" });
        clock.advance(1);
      }
    };
    lease(30);
    const first = sent(await reader.drain());
    const copies = JSON.stringify(first);
    expect(byHash(first)).toEqual(pool.listKeys());
    lease(50);
    clock.advance(100);
    const second = sent(await reader.drain());
    expect(byHash(second)).toEqual(pool.listKeys());
    // What went out before is as it was when sent: the pool never changes a status it handed out.
    expect(JSON.stringify(first)).toBe(copies);
    expect(JSON.stringify([...first, ...second])).not.toContain("sk-live-");
    hub.close();
  });
});
