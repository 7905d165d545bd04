import fc from "fast-check";
import { IndexedHeap, type HeapNode } from "../../../src/domain/indexed-heap";

interface Item extends HeapNode {
  id: number;
  p: number;
  rank: number;
}

/** How a run's heap breaks ties: by id only, or by rank (then id), with ranks that repeat or are all NaN. */
type Ties = "tie only" | "ranks" | "NaN ranks";

describe.each<Ties>(["tie only", "ranks", "NaN ranks"])("IndexedHeap (%s)", (ties) => {
  it("pops in (priority, rank, tie) order under random pushes, pops, removals and updates", () => {
    const action = fc.oneof(
      fc.record({ kind: fc.constant("push" as const), p: fc.integer({ min: 0, max: 20 }), rank: fc.integer({ min: 0, max: 3 }) }),
      fc.record({ kind: fc.constant("pop" as const) }),
      fc.record({ kind: fc.constant("remove" as const), at: fc.nat() }),
      fc.record({ kind: fc.constant("update" as const), at: fc.nat(), p: fc.integer({ min: 0, max: 20 }) }),
    );
    fc.assert(
      fc.property(fc.array(action, { maxLength: 200 }), (actions) => {
        const heap =
          ties === "tie only" ? new IndexedHeap<Item>((a, b) => a.id < b.id) : new IndexedHeap<Item>((a, b) => a.id < b.id, (item) => item.rank);
        let live: Item[] = [];
        let nextId = 0;
        // NaN ranks compare as equal: the tie decides.
        const byRank = (a: Item, b: Item) => (ties === "ranks" ? a.rank - b.rank : 0);
        const expectedTop = () => [...live].sort((a, b) => a.p - b.p || byRank(a, b) || a.id - b.id)[0];
        for (const a of actions) {
          if (a.kind === "push") {
            const item = { id: nextId++, p: a.p, rank: ties === "NaN ranks" ? NaN : a.rank, heapPos: -1 };
            live.push(item);
            heap.push(item, item.p);
          } else if (a.kind === "pop") {
            const want = expectedTop();
            expect(heap.pop()).toBe(want);
            live = live.filter((x) => x !== want);
            if (want) expect(want.heapPos).toBe(-1);
          } else if (live.length > 0) {
            const item = live[a.at % live.length];
            if (a.kind === "remove") {
              expect(heap.remove(item)).toBe(true);
              expect(heap.remove(item)).toBe(false);
              live = live.filter((x) => x !== item);
            } else {
              item.p = a.p;
              heap.update(item, a.p);
            }
          }
          expect(heap.size).toBe(live.length);
          expect(heap.peek()).toBe(expectedTop());
          expect(heap.peekPriority()).toBe(expectedTop()?.p ?? Infinity);
        }
      }),
      { numRuns: 300 },
    );
  });
});
