import fc from "fast-check";
import { IndexedHeap } from "../../../src/domain/indexed-heap";
import { actions, checkAgainstModel, TIES, type Item } from "./priority-queue-model";

describe.each(TIES)("IndexedHeap (%s)", (ties) => {
  it("pops in (priority, rank, tie) order under random pushes, pops, removals and updates", () => {
    fc.assert(
      fc.property(actions("random"), (list) => {
        const heap = ties === "tie only" ? new IndexedHeap<Item>((a, b) => a.id < b.id) : new IndexedHeap<Item>((a, b) => a.id < b.id, (item) => item.rank);
        checkAgainstModel(heap, ties, "random", list);
      }),
      { numRuns: 300 },
    );
  });
});
