import fc from "fast-check";
import { SlotBits } from "../../../src/watch/slot-bits";

describe("SlotBits", () => {
  test.each([
    ["a list while it is smaller than the bitmap", undefined],
    ["a bitmap from the first member", 0],
    ["a list of at most 4, then a bitmap", 4],
  ])("property: add, delete, the wrapping scan and forEach agree with a plain Set (%s)", (_name, listLimit) => {
    const op = fc.oneof(
      fc.record({ kind: fc.constant("add" as const), slot: fc.nat(5000) }),
      fc.record({ kind: fc.constant("delete" as const), slot: fc.nat(5000) }),
      fc.record({ kind: fc.constant("scan" as const), from: fc.nat(6000) }),
    );
    fc.assert(
      fc.property(fc.array(op, { maxLength: 200 }), (ops) => {
        const bits = new SlotBits(listLimit);
        const model = new Set<number>();
        for (const o of ops) {
          if (o.kind === "add") expect(bits.add(o.slot)).toBe(!model.has(o.slot)), model.add(o.slot);
          else if (o.kind === "delete") expect(bits.delete(o.slot)).toBe(model.delete(o.slot));
          else {
            const sorted = [...model].sort((a, b) => a - b);
            const expected = sorted.find((s) => s >= o.from) ?? sorted[0] ?? -1;
            expect(bits.nextFrom(o.from)).toBe(expected);
          }
          expect(bits.size).toBe(model.size);
        }
        for (const slot of model) expect(bits.has(slot)).toBe(true);
        const visited: number[] = [];
        bits.forEach((slot) => visited.push(slot));
        expect(visited).toEqual([...model].sort((a, b) => a - b));
      }),
      { numRuns: 300 },
    );
  });

  test.each([undefined, 0, 3])("a scan visits every member once per sweep, in slot order from the cursor (list limit %s)", (listLimit) => {
    const bits = new SlotBits(listLimit);
    for (const slot of [3, 31, 32, 1023, 1024, 40_000, 99_999]) bits.add(slot);
    const order: number[] = [];
    let cursor = 1024;
    for (let i = 0; i < 7; i++) {
      const slot = bits.nextFrom(cursor);
      order.push(slot);
      cursor = slot + 1;
    }
    expect(order).toEqual([1024, 40_000, 99_999, 3, 31, 32, 1023]);
  });

  test("a few members spread over many slots stay a short list; past the limit the set is a bitmap and keeps every member", () => {
    const bits = new SlotBits(16);
    const slots = Array.from({ length: 16 }, (_, i) => (i * 6_151) % 100_000);
    for (const slot of slots) bits.add(slot);
    expect(bits.heldBytes).toBeLessThanOrEqual(16 * 4);
    bits.add(99_999);
    expect(bits.heldBytes).toBeGreaterThanOrEqual(100_000 / 8);
    for (const slot of [...slots, 99_999]) expect(bits.has(slot)).toBe(true);
    expect(bits.size).toBe(17);
    bits.clear();
    expect(bits.heldBytes).toBe(0);
    expect(bits.nextFrom(0)).toBe(-1);
  });

  test("by default a set stays a list while the list is smaller than the bitmap over its slots", () => {
    const spread = (n: number) => Array.from({ length: n }, (_, i) => Math.floor((i * 100_000) / n));
    const some = new SlotBits();
    for (const slot of spread(2000)) some.add(slot);
    some.add(99_999);
    expect(some.heldBytes).toBeLessThanOrEqual(2001 * 4 * 1.5);
    const many = new SlotBits();
    for (const slot of spread(4000)) many.add(slot);
    many.add(99_999);
    expect(many.heldBytes).toBeGreaterThanOrEqual(100_000 / 8);
    expect(many.heldBytes).toBeLessThanOrEqual(16 * 1024 + 512); // the bitmap alone: the list is gone
    for (const slot of [...spread(4000), 99_999]) expect(many.has(slot)).toBe(true);
    expect(many.size).toBe(4001);
  });
});
