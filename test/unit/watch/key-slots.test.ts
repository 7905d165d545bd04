import type { KeyStatus } from "../../../src/domain/types";
import { KeySlots } from "../../../src/watch/key-slots";
import { status } from "./fake-pool";

describe("KeySlots", () => {
  /** Slots over a pool whose statuses are counted as they are read. */
  function setup(cacheSize: number) {
    const current = new Map<string, KeyStatus>();
    let reads = 0;
    const slots = new KeySlots((keyHash) => {
      reads++;
      const found = current.get(keyHash);
      return found && { ...found };
    }, cacheSize);
    const add = (keyHash: string, stamp = 0) => {
      current.set(keyHash, status(keyHash));
      const slot = slots.slotFor(keyHash);
      slots.set(slot, "openai", ["turbo", "gpt4"], stamp);
      return slot;
    };
    return { slots, current, add, reads: () => reads };
  }

  test("keeps routing attributes, not statuses: the families list is shared, and a status is read when asked for", () => {
    const { slots, add, reads } = setup(4);
    const a = add("oai-a");
    const b = add("oai-b");
    expect(slots.familiesAt(a)).toBe(slots.familiesAt(b));
    expect(Object.isFrozen(slots.familiesAt(a))).toBe(true);
    expect(reads()).toBe(0);
    expect(slots.statusAt(a)!.keyHash).toBe("oai-a");
    expect(slots.statusAt(a)).toBe(slots.statusAt(a));
    expect(reads()).toBe(1);
  });

  test("a status read before the key's last change is read again", () => {
    const { slots, current, add, reads } = setup(4);
    const a = add("oai-a");
    const first = slots.statusAt(a)!;
    current.set("oai-a", status("oai-a", { leaseCount: 3 }));
    slots.set(a, "openai", ["turbo", "gpt4"], 7);
    const second = slots.statusAt(a)!;
    expect(second).not.toBe(first);
    expect(second.leaseCount).toBe(3);
    expect(reads()).toBe(2);
  });

  test("evicts the oldest status kept, and only if it is still its key's: a key kept again later stays", () => {
    const { slots, current, add, reads } = setup(2);
    const a = add("oai-a");
    const b = add("oai-b");
    const c = add("oai-c");
    slots.statusAt(a); // kept at stamp 0
    current.set("oai-a", status("oai-a", { leaseCount: 1 }));
    slots.set(a, "openai", ["turbo", "gpt4"], 5);
    slots.statusAt(a); // kept again at stamp 5: the cache holds a twice, once outdated
    slots.statusAt(b); // evicts a at stamp 0, which is no longer a's: a at 5 stays
    expect(reads()).toBe(3);
    expect(slots.statusAt(a)!.leaseCount).toBe(1);
    expect(reads()).toBe(3);
    slots.statusAt(c); // evicts a at stamp 5
    expect(slots.cachedStatuses).toBe(2);
    slots.statusAt(a);
    expect(reads()).toBe(5);
  });

  test("a removed key has no status until its slot is reclaimed and reused", () => {
    const { slots, current, add } = setup(4);
    const a = add("oai-a");
    slots.statusAt(a);
    current.delete("oai-a");
    slots.bury(a, 3);
    expect(slots.statusAt(a)).toBeNull();
    expect(slots.providerAt(a)).toBeNull();
    expect([...slots.tombstoneSlots()]).toEqual([a]);
    slots.reclaim(a);
    const b = add("oai-b", 4);
    expect(b).toBe(a);
    expect(slots.statusAt(b)!.keyHash).toBe("oai-b");
  });
});
