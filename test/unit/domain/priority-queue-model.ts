import fc from "fast-check";
import type { HeapNode } from "../../../src/domain/indexed-heap";

export interface Item extends HeapNode {
  id: number;
  p: number;
  rank: number;
}

/** What IndexedHeap and InOrderQueue both offer. */
export interface PriorityQueue {
  readonly size: number;
  push(item: Item, priority: number): void;
  pop(): Item | undefined;
  remove(item: Item): boolean;
  /** InOrderQueue's; a heap's item is given a new priority by removing and pushing it. */
  update?(item: Item, priority: number): void;
  peek(): Item | undefined;
  peekPriority(): number;
  has(item: Item): boolean;
}

/** How a run's queue breaks ties: by id only, or by rank (then id), with ranks that repeat or are all NaN. */
export type Ties = "tie only" | "ranks" | "NaN ranks";

export const TIES: Ties[] = ["tie only", "ranks", "NaN ranks"];

type Action =
  | { kind: "push"; p: number; rank: number }
  | { kind: "pop" }
  | { kind: "remove"; at: number }
  | { kind: "update"; at: number; p: number };

/**
 * Priorities anywhere in a small range (many ties, most pushes out of order), or mostly rising as
 * a pool's leases make them (each push and update a step above the last, sometimes equal, now
 * and then one back).
 */
export function actions(shape: "random" | "rising"): fc.Arbitrary<Action[]> {
  const step = shape === "random" ? fc.integer({ min: 0, max: 20 }) : fc.oneof({ weight: 6, arbitrary: fc.integer({ min: 0, max: 2 }) }, { weight: 1, arbitrary: fc.integer({ min: -40, max: -1 }) });
  const action = fc.oneof(
    { weight: 3, arbitrary: fc.record({ kind: fc.constant("push" as const), p: step, rank: fc.integer({ min: 0, max: 3 }) }) },
    { weight: 2, arbitrary: fc.record({ kind: fc.constant("pop" as const)}) },
    { weight: 1, arbitrary: fc.record({ kind: fc.constant("remove" as const), at: fc.nat() }) },
    { weight: shape === "random" ? 1 : 4, arbitrary: fc.record({ kind: fc.constant("update" as const), at: fc.nat(), p: step }) },
  );
  return fc.array(action, { maxLength: shape === "random" ? 200 : 600 });
}

/**
 * Runs `list` against `queue` and a sorted list of the live items, checking after every step that
 * the queue's first item, its priority and its size are the list's. With "rising" priorities, a
 * step is added to the latest priority (the clock of a pool that leases).
 */
export function checkAgainstModel(queue: PriorityQueue, ties: Ties, shape: "random" | "rising", list: Action[]): void {
  let live: Item[] = [];
  let nextId = 0;
  let latest = 1000;
  const priority = (p: number) => (shape === "random" ? p : (latest = Math.max(0, latest + p)));
  // NaN ranks compare as equal: the tie decides.
  const byRank = (a: Item, b: Item) => (ties === "ranks" ? a.rank - b.rank : 0);
  const expectedTop = () => [...live].sort((a, b) => a.p - b.p || byRank(a, b) || a.id - b.id)[0];
  for (const a of list) {
    if (a.kind === "push") {
      const item = { id: nextId++, p: priority(a.p), rank: ties === "NaN ranks" ? NaN : a.rank, heapPos: -1 };
      live.push(item);
      queue.push(item, item.p);
    } else if (a.kind === "pop") {
      const want = expectedTop();
      expect(queue.pop()).toBe(want);
      live = live.filter((x) => x !== want);
      if (want) expect(want.heapPos).toBe(-1);
    } else if (live.length > 0) {
      const item = live[a.at % live.length];
      if (a.kind === "remove") {
        expect(queue.remove(item)).toBe(true);
        expect(queue.remove(item)).toBe(false);
        expect(queue.has(item)).toBe(false);
        live = live.filter((x) => x !== item);
      } else {
        item.p = priority(a.p);
        if (queue.update) queue.update(item, item.p);
        else if (queue.remove(item)) queue.push(item, item.p);
      }
    }
    expect(queue.size).toBe(live.length);
    expect(queue.peek()).toBe(expectedTop());
    expect(queue.peekPriority()).toBe(expectedTop()?.p ?? Infinity);
  }
  for (const item of live) expect(queue.has(item)).toBe(true);
}
