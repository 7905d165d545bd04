import fc from "fast-check";
import { ManualClock } from "../../../src/domain/clock";
import { ErrorCode } from "../../../src/domain/errors";
import type { KeyStatus } from "../../../src/domain/types";
import { estimateStatusBytes, WatchHub, type WatchHubOptions } from "../../../src/watch/watch-hub";
import type { WatchEvent } from "../../../src/watch/watch-subscription";
import { FakePool, status } from "./fake-pool";
import { Reader } from "./hub-reader";

function setup(options: Partial<WatchHubOptions> = {}) {
  const clock = new ManualClock();
  const pool = new FakePool();
  const hub = new WatchHub(pool, { clock, saturated: () => false, ...options });
  return { clock, pool, hub };
}

const hashes = (n: number) => Array.from({ length: n }, (_, i) => `oai-${String(i).padStart(4, "0")}`);

/** A client's view: collects slices until the last, then applies updates (the contract's rule). */
class View {
  readonly keys = new Map<string, KeyStatus>();
  private collecting: KeyStatus[] | null = [];
  lastSequence = 0;
  slices = 0;

  apply(events: WatchEvent[]): void {
    for (const e of events) {
      expect(e.sequence).toBe(this.lastSequence + 1);
      this.lastSequence = e.sequence;
      if (e.type === "snapshot") {
        expect(this.collecting).not.toBeNull(); // slices only at the start
        this.slices++;
        this.collecting!.push(...e.keys);
        if (!e.more) {
          for (const k of this.collecting!) this.keys.set(k.keyHash, k);
          this.collecting = null;
        }
        continue;
      }
      if (e.type === "heartbeat") continue;
      expect(this.collecting).toBeNull(); // no update before the last slice
      if (e.type === "updated") this.keys.set(e.status.keyHash, e.status);
      if (e.type === "removed") {
        expect(this.keys.has(e.keyHash)).toBe(true);
        this.keys.delete(e.keyHash);
      }
      if (e.type === "changes") {
        const touched = [...e.updated.map((s) => s.keyHash), ...e.removed];
        expect(new Set(touched).size).toBe(touched.length); // each key once per message
        for (const s of e.updated) this.keys.set(s.keyHash, s);
        for (const h of e.removed) {
          expect(this.keys.has(h)).toBe(true);
          this.keys.delete(h);
        }
      }
    }
  }

  sorted(): KeyStatus[] {
    return [...this.keys.values()].sort((a, b) => (a.keyHash < b.keyHash ? -1 : 1));
  }
}

describe("WatchHub snapshot slices", () => {
  test("a large snapshot arrives as slices within the byte budget, in key_hash order, the last one marked", async () => {
    const budget = 1000;
    const { pool, hub } = setup({ messageBytes: budget });
    for (const h of hashes(100).reverse()) pool.put(status(h));
    const reader = new Reader(hub.subscribe());
    const slices: Extract<WatchEvent, { type: "snapshot" }>[] = [];
    for (;;) {
      const e = (await reader.poll()) as WatchEvent;
      expect(e.type).toBe("snapshot");
      if (e.type !== "snapshot") break;
      slices.push(e);
      if (!e.more) break;
    }
    const perKey = estimateStatusBytes(status("oai-0000"));
    expect(slices.length).toBe(Math.ceil(100 / Math.floor(budget / perKey)));
    for (const slice of slices) expect(slice.keys.reduce((n, k) => n + estimateStatusBytes(k), 0)).toBeLessThanOrEqual(budget);
    expect(slices.slice(0, -1).every((s) => s.more)).toBe(true);
    expect(slices.flatMap((s) => s.keys.map((k) => k.keyHash))).toEqual(hashes(100));
    expect(await reader.poll()).toBeUndefined();
  });

  test("changes during the slices come after the last slice, each key's latest state once", async () => {
    const { clock, pool, hub } = setup({ messageBytes: 1000 });
    for (const h of hashes(60)) pool.put(status(h));
    const reader = new Reader(hub.subscribe());
    const view = new View();
    view.apply([(await reader.poll()) as WatchEvent]); // the first slice
    pool.change("oai-0000", { leaseCount: 1 }); // already sent
    pool.change("oai-0059", { leaseCount: 1 }); // not yet sent: its slice carries it
    pool.change("oai-0000", { leaseCount: 2 });
    pool.remove("oai-0030");
    pool.put(status("oai-0005x"));
    const events = await reader.drain();
    view.apply(events);
    const updates = events.filter((e) => e.type !== "snapshot");
    expect(updates.map((e) => (e.type === "updated" ? `${e.status.keyHash}=${e.status.leaseCount}` : e.type))).toEqual([
      "oai-0000=2",
      "oai-0005x=0",
    ]);
    clock.advance(100);
    view.apply(await reader.drain());
    expect(view.sorted()).toEqual(pool.listKeys());
  });

  test.each([false, true])("a watch that stops reading after its first slice owes only the keys that slice sent, whatever changes, and still converges (batch %s)", async (batch) => {
    const { clock, pool, hub } = setup({ messageBytes: 1000 });
    for (const h of hashes(2000)) pool.put(status(h));
    const reader = new Reader(hub.subscribe({}, undefined, { batch }));
    const view = new View();
    const first = (await reader.poll()) as Extract<WatchEvent, { type: "snapshot" }>;
    view.apply([first]);
    const sent = first.keys.length;
    expect(sent).toBeLessThan(100);
    // Every key changes twice, a key already sent and one not yet reached leave, two keys join
    // (one before the snapshot's cursor, one after it).
    for (let round = 1; round <= 2; round++) for (const h of hashes(2000)) if (h !== "oai-0001" && h !== "oai-1500") pool.change(h, { leaseCount: round });
    pool.remove("oai-0001");
    pool.remove("oai-1500");
    pool.put(status("oai-0000a"));
    pool.put(status("oai-1000a"));
    expect(reader.subscription.pendingCount).toBeLessThanOrEqual(sent + 1);
    for (let round = 0; round < 200 && view.slices < 100; round++) {
      view.apply(await reader.drain());
      clock.advance(100);
    }
    for (let round = 0; round < 4; round++) {
      view.apply(await reader.drain());
      clock.advance(100);
    }
    expect(reader.subscription.pendingCount).toBe(0);
    expect(view.sorted()).toEqual(pool.listKeys());
  });

  test("watches that open together share each slice (one listing, one encoding), and still converge", async () => {
    const { clock, pool, hub } = setup({ messageBytes: 1000 });
    for (const h of hashes(50)) pool.put(status(h));
    const first = new Reader(hub.subscribe());
    const a = (await first.poll()) as Extract<WatchEvent, { type: "snapshot" }>;
    // A change after the shared slice was made, before the second watch opens.
    pool.change("oai-0001", { leaseCount: 7 });
    const second = new Reader(hub.subscribe());
    const b = (await second.poll()) as Extract<WatchEvent, { type: "snapshot" }>;
    expect(b.keys).toBe(a.keys); // the same array: encoded once by the transport
    expect(b.keys.find((k) => k.keyHash === "oai-0001")!.leaseCount).toBe(0);
    const view = new View();
    view.apply([{ ...b, sequence: 1 }]);
    view.apply(await second.drain());
    clock.advance(100);
    view.apply(await second.drain());
    expect(view.keys.get("oai-0001")!.leaseCount).toBe(7); // sent again right after the snapshot
    expect(view.sorted()).toEqual(pool.listKeys());
    // A key added or removed makes new slices: a shared slice would miss it.
    pool.put(status("oai-0000a"));
    const third = new Reader(hub.subscribe());
    const c = (await third.poll()) as Extract<WatchEvent, { type: "snapshot" }>;
    expect(c.keys).not.toBe(a.keys);
    expect(c.keys.map((k) => k.keyHash)).toContain("oai-0000a");
  });

  test("a slice made again holds the statuses the changes carried, not the listing's fresh copies: each status is measured and encoded once", async () => {
    // A real pool lists fresh copies of its statuses; the transport encodes a status object once.
    class CopyingPool extends FakePool {
      override *keysAfter(after: string, filter: { provider?: KeyStatus["provider"]; modelFamilies?: readonly string[] } = {}): Generator<KeyStatus> {
        for (const s of super.keysAfter(after, filter)) yield { ...s };
      }
    }
    const clock = new ManualClock();
    const pool = new CopyingPool();
    for (const h of hashes(20)) pool.put(status(h));
    const measured = new Set<KeyStatus>();
    const hub = new WatchHub(pool, { clock, saturated: () => false, measure: (s) => (measured.add(s), estimateStatusBytes(s)) });
    const drainSnapshot = async (reader: Reader) => (await reader.drain()).flatMap((e) => (e.type === "snapshot" ? e.keys : []));
    const first = await drainSnapshot(new Reader(hub.subscribe()));
    expect(first).toHaveLength(20);
    clock.advance(5_000); // past the age at which a shared slice is made again
    const again = await drainSnapshot(new Reader(hub.subscribe()));
    expect(again).toHaveLength(20);
    again.forEach((s, i) => expect(s).toBe(first[i]));
    // A change's new status is what the next slices carry.
    const changed = pool.change("oai-0003", { leaseCount: 9 });
    clock.advance(5_000);
    const third = await drainSnapshot(new Reader(hub.subscribe()));
    expect(third[3]).toEqual(changed);
    expect(third.filter((s, i) => s !== first[i])).toEqual([third[3]]);
    expect(measured.size).toBe(21);
    hub.close();
  });

  test("watches opening at once share a budget of slices per event-loop turn, and all finish", async () => {
    const { pool, hub } = setup({ messageBytes: 400 });
    for (const h of hashes(40)) pool.put(status(h));
    const subscriptions = Array.from({ length: 100 }, () => hub.subscribe());
    const slicesPerWatch = Math.ceil(40 / Math.floor(400 / estimateStatusBytes(status("oai-0000"))));
    let arrived = 0;
    const readAll = async (subscription: (typeof subscriptions)[number]) => {
      for (;;) {
        const { value } = await subscription.next();
        arrived++;
        if (value!.type === "snapshot" && !value!.more) return;
      }
    };
    const all = Promise.all(subscriptions.map(readAll));
    for (let i = 0; i < 20; i++) await Promise.resolve(); // microtasks only: the same turn
    expect(arrived).toBeGreaterThan(0);
    expect(arrived).toBeLessThanOrEqual(16);
    await all;
    expect(arrived).toBe(100 * slicesPerWatch);
  });

  test("a turn makes at most one slice afresh (a listing and its encodings); slices already made are shared within the budget", async () => {
    const { pool, hub } = setup({ messageBytes: 400 });
    for (const h of hashes(40)) pool.put(status(h));
    const slicesPerWatch = Math.ceil(40 / Math.floor(400 / estimateStatusBytes(status("oai-0000"))));
    expect(slicesPerWatch).toBeGreaterThan(2);
    expect(slicesPerWatch).toBeLessThan(16);
    const readInOneTurn = async (subscription: ReturnType<typeof hub.subscribe>) => {
      let arrived = 0;
      let last = false;
      void (async () => {
        while (!last) {
          const { value } = await subscription.next();
          arrived++;
          last = value!.type === "snapshot" && !value!.more;
        }
      })();
      for (let i = 0; i < 50; i++) await Promise.resolve(); // microtasks only: the same turn
      const inTurn = arrived;
      while (!last) await new Promise((resolve) => setImmediate(resolve));
      return inTurn;
    };
    // The first watch finds no slice made: one per turn.
    expect(await readInOneTurn(hub.subscribe())).toBe(1);
    // The next one shares them all: its whole snapshot in one turn.
    expect(await readInOneTurn(hub.subscribe())).toBe(slicesPerWatch);
    hub.close();
  });

  test("removed keys' slots are reclaimed; a watch that stops reading while keys churn ends with UNAVAILABLE", async () => {
    const { pool, hub } = setup();
    pool.put(status("oai-keep"));
    const reader = new Reader(hub.subscribe());
    await reader.poll();
    for (let i = 0; i < 5000; i++) {
      pool.put(status(`oai-churn-${i}`));
      pool.remove(`oai-churn-${i}`);
    }
    // Added and removed unseen: nothing owed, so the slots were reused.
    expect(hub.slotCount).toBeLessThan(2200);
    const stuck = hub.subscribe();
    await stuck.next(); // the snapshot, then it never reads again
    for (let i = 0; i < 3000; i++) pool.put(status(`oai-more-${i}`));
    for (let i = 0; i < 3000; i++) pool.remove(`oai-more-${i}`);
    await expect(stuck.next()).rejects.toMatchObject({ code: ErrorCode.Unavailable, message: expect.stringMatching(/fell too far behind/) });
    expect(hub.slotCount).toBeLessThan(8000);
    hub.close();
  });
});

describe("WatchHub batch", () => {
  test("one message per window carries every change of that window, each key once", async () => {
    const { clock, pool, hub } = setup();
    for (const h of ["oai-a", "oai-b", "oai-c"]) pool.put(status(h));
    const reader = new Reader(hub.subscribe({}, undefined, { batch: true }));
    await reader.poll();
    const start = clock.now();
    // Quiet until now: the first change goes out at once, in a batch.
    pool.change("oai-a", { leaseCount: 1 });
    const first = (await reader.drain()) as Extract<WatchEvent, { type: "changes" }>[];
    expect(first.map((e) => [e.type, e.updated.map((s) => s.keyHash)])).toEqual([["changes", ["oai-a"]]]);
    // Changes within the window that message opened: one message at its end.
    clock.advance(10);
    pool.change("oai-b", { leaseCount: 1 });
    pool.change("oai-a", { leaseCount: 2 });
    clock.advance(30);
    pool.change("oai-a", { leaseCount: 3 });
    pool.remove("oai-c");
    expect(await reader.drain()).toEqual([]);
    clock.advance(59);
    expect(await reader.drain()).toEqual([]);
    clock.advance(1);
    const second = (await reader.drain()) as Extract<WatchEvent, { type: "changes" }>[];
    expect(second).toHaveLength(1);
    expect(second[0]!.time).toBe(start + 100);
    expect(second[0]!.updated.map((s) => `${s.keyHash}=${s.leaseCount}`).sort()).toEqual(["oai-a=3", "oai-b=1"]);
    expect(second[0]!.removed).toEqual(["oai-c"]);
    expect(hub.pendingCount).toBe(0);
  });

  test("a window's changes beyond the message budget follow at once in further messages", async () => {
    const { clock, pool, hub } = setup({ messageBytes: 1000 });
    for (const h of hashes(40)) pool.put(status(h));
    const reader = new Reader(hub.subscribe({}, undefined, { batch: true }));
    const view = new View();
    view.apply(await reader.drain());
    for (const h of hashes(40)) pool.change(h, { leaseCount: 1 });
    const events = (await reader.drain()) as Extract<WatchEvent, { type: "changes" }>[];
    expect(events.length).toBeGreaterThan(1);
    for (const e of events) expect(e.updated.reduce((n, k) => n + estimateStatusBytes(k), 0)).toBeLessThanOrEqual(1000);
    view.apply(events);
    expect(view.sorted()).toEqual(pool.listKeys());
    clock.advance(100);
    expect(await reader.drain()).toEqual([]);
  });

  test("property: with slices, batches or neither, a drained client's view equals listKeys for its filter", async () => {
    const keys = ["oai-a", "oai-b", "oai-c", "ant-d", "ant-e", "oai-f", "ant-g"];
    const families = ["turbo", "gpt4", "gpt4o", "claude"];
    const op = fc.oneof(
      fc.record({ kind: fc.constant("put" as const), key: fc.constantFrom(...keys), fams: fc.subarray(families, { minLength: 1 }), n: fc.nat(100) }),
      fc.record({ kind: fc.constant("remove" as const), key: fc.constantFrom(...keys) }),
      fc.record({ kind: fc.constant("advance" as const), ms: fc.integer({ min: 0, max: 250 }) }),
      fc.record({ kind: fc.constant("pull" as const), count: fc.integer({ min: 0, max: 3 }) }),
      fc.record({ kind: fc.constant("open" as const) }),
    );
    const filter = fc.record({
      provider: fc.constantFrom(undefined, "openai" as const, "anthropic" as const),
      modelFamilies: fc.subarray(families),
    });
    await fc.assert(
      fc.asyncProperty(filter, fc.boolean(), fc.boolean(), fc.array(op, { maxLength: 60 }), async (f, batch, saturated, ops) => {
        const { clock, pool, hub } = setup({ heartbeatMs: 1000, messageBytes: 250, saturated: () => saturated });
        const present = new Set<string>();
        const watches: { reader: Reader; view: View }[] = [];
        const open = () => watches.push({ reader: new Reader(hub.subscribe(f, undefined, { batch })), view: new View() });
        open();
        for (const o of ops) {
          if (o.kind === "put") {
            pool.put(status(o.key, { modelFamilies: o.fams, leaseCount: o.n }));
            present.add(o.key);
          } else if (o.kind === "remove") {
            if (present.delete(o.key)) pool.remove(o.key);
          } else if (o.kind === "advance") {
            clock.advance(o.ms);
          } else if (o.kind === "open") {
            if (watches.length < 3) open();
          } else {
            for (const { reader, view } of watches) {
              for (let i = 0; i < o.count; i++) {
                const e = await reader.poll();
                if (e === undefined) break;
                if (e !== "done") view.apply([e]);
              }
            }
          }
        }
        const expected = pool.listKeys({ provider: f.provider, modelFamilies: f.modelFamilies });
        for (const { reader, view } of watches) {
          for (let round = 0; round < 4; round++) {
            view.apply(await reader.drain());
            clock.advance(100);
          }
          view.apply(await reader.drain());
          expect(reader.subscription.pendingCount).toBe(0);
          expect(view.sorted()).toEqual(expected);
        }
        hub.close();
      }),
      { numRuns: 1000 },
    );
  });
});
