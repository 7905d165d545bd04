import fc from "fast-check";
import { InOrderQueue } from "../../../src/domain/in-order-queue";
import { actions, checkAgainstModel, TIES, type Item } from "./priority-queue-model";

const queueFor = (ties: string) =>
  ties === "tie only" ? new InOrderQueue<Item>((a, b) => a.id < b.id) : new InOrderQueue<Item>((a, b) => a.id < b.id, (item) => item.rank);

describe.each(TIES)("InOrderQueue (%s)", (ties) => {
  it("pops in (priority, rank, tie) order under random pushes, pops, removals and updates", () => {
    fc.assert(
      fc.property(actions("random"), (list) => checkAgainstModel(queueFor(ties), ties, "random", list)),
      { numRuns: 300 },
    );
  });

  it("keeps the same order when priorities mostly rise, as leases make them", () => {
    fc.assert(
      fc.property(actions("rising"), (list) => checkAgainstModel(queueFor(ties), ties, "rising", list)),
      { numRuns: 300 },
    );
  });
});

describe("InOrderQueue with a pool's leases", () => {
  /**
   * n items, all at priority 0 (never leased) or at priority `id` (leased before, in id order),
   * then `leases` times: the first item out gets the tick's priority, `perTick` leases a tick.
   */
  function leaseRound(n: number, leases: number, perTick: number, before: "never" | "in id order" = "never") {
    const queue = new InOrderQueue<Item>((a, b) => a.id < b.id, (item) => item.rank);
    const items: Item[] = Array.from({ length: n }, (_, id) => ({ id, p: before === "never" ? 0 : id, rank: (id * 7919) % n, heapPos: -1 }));
    for (const item of items) queue.push(item, item.p);
    const order: number[] = [];
    for (let i = 0; i < leases; i++) {
      const first = queue.peek()!;
      order.push(first.id);
      first.p = n + Math.floor(i / perTick);
      queue.update(first, first.p);
    }
    return { queue, items, order };
  }

  it("hands out every key once before any key twice, in (rank, id) order, then in lease order", () => {
    const n = 500;
    const { order } = leaseRound(n, 3 * n, 1);
    const firstPass = order.slice(0, n);
    expect(new Set(firstPass).size).toBe(n);
    const byRank = [...Array(n).keys()].sort((a, b) => ((a * 7919) % n) - ((b * 7919) % n) || a - b);
    expect(firstPass).toEqual(byRank);
    expect(order.slice(n, 2 * n)).toEqual(firstPass);
    expect(order.slice(2 * n)).toEqual(firstPass);
  });

  it("orders keys leased in the same tick by rank, as the heap does", () => {
    const n = 300;
    // Leased first in id order, 40 a tick: more than the run shifts, so some keys go to the heap
    // beside it. Each tick's keys must come back by rank, not in the order they were leased.
    const { order } = leaseRound(n, 4 * n, 40, "in id order");
    expect(order.slice(0, n)).toEqual([...Array(n).keys()]);
    const rankOf = (id: number) => (id * 7919) % n;
    for (let i = n; i < order.length; i += 40) {
      const tick = order.slice(i, i + 40);
      // Keys leased in one tick come back in one tick, by rank.
      expect(tick).toEqual([...tick].sort((a, b) => rankOf(a) - rankOf(b) || a - b));
    }
  });

  it("keeps its ring within four times the keys it holds while keys leave from its middle", () => {
    const queue = new InOrderQueue<Item>((a, b) => a.id < b.id);
    const live: Item[] = [];
    for (let id = 0; id < 20_000; id++) {
      const item = { id, p: id, rank: 0, heapPos: -1 };
      queue.push(item, id);
      live.push(item);
      // Hold 100 keys: one leaves from somewhere inside for each one that comes.
      if (live.length > 100) queue.remove(live.splice(1 + ((id * 31) % 98), 1)[0]);
    }
    expect(queue.size).toBe(100);
    expect(queue.peek()).toBe(live[0]);
    expect((queue as unknown as { items: unknown[] }).items.length).toBeLessThanOrEqual(4 * 100);
  });
});
