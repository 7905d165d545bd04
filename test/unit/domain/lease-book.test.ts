/**
 * The lease book (src/domain/leases.ts) keeps open leases in a ring by sequence number and
 * expires them in that order, with the leases whose expiry comes before an earlier lease's in a
 * heap of their own. Whatever the order of expiries, ends and time, a lease must be found by its
 * id exactly while it is open, end once, and expire once, when its time comes and not before.
 */
import fc from "fast-check";
import { ManualClock } from "../../../src/domain/clock";
import { LeaseBook } from "../../../src/domain/leases";

interface Owner {
  name: number;
}

type Step =
  | { kind: "open"; ttl: number }
  | { kind: "end"; at: number }
  | { kind: "endUnknown" }
  | { kind: "advance"; ms: number };

const step: fc.Arbitrary<Step> = fc.oneof(
  { weight: 4, arbitrary: fc.record({ kind: fc.constant("open" as const), ttl: fc.integer({ min: 1, max: 50 }) }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant("end" as const), at: fc.nat() }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant("endUnknown" as const) }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant("advance" as const), ms: fc.integer({ min: 0, max: 30 }) }) },
);

it("finds, ends and expires every lease as a plain list of open leases would, in any order of expiries", () => {
  fc.assert(
    fc.property(fc.array(step, { maxLength: 3000 }), (steps) => {
      const clock = new ManualClock(1_000);
      const expired: Owner[] = [];
      const book = new LeaseBook<Owner>(clock, (owner) => {
        // Nothing expires early, and it has left the book when it is told.
        expect(model.get(owner.name)!.expiresAt).toBeLessThanOrEqual(clock.now());
        expect(book.ownerOf(model.get(owner.name)!.id)).toBeUndefined();
        expired.push(owner);
      });
      const model = new Map<number, { id: string; owner: Owner; expiresAt: number; open: boolean }>();
      const ids: string[] = [];
      let names = 0;
      for (const s of steps) {
        if (s.kind === "open") {
          const owner = { name: names++ };
          // A smaller TTL after a larger one: a lease that expires before an earlier one.
          const expiresAt = clock.now() + s.ttl;
          const id = book.idOf(book.open(owner, expiresAt));
          expect(id).toMatch(/^[0-9a-z]+-[0-9a-f]{16}$/);
          expect(ids).not.toContain(id);
          ids.push(id);
          model.set(owner.name, { id, owner, expiresAt, open: true });
        } else if (s.kind === "end" && ids.length > 0) {
          const id = ids[s.at % ids.length];
          const lease = [...model.values()].find((l) => l.id === id)!;
          expect(book.end(id)).toBe(lease.open ? lease.owner : undefined);
          lease.open = false;
          expect(book.end(id)).toBeUndefined();
        } else if (s.kind === "endUnknown") {
          expect(book.end("zz-0000000000000000")).toBeUndefined();
          expect(book.ownerOf(`${ids[0] ?? "1-"}0`)).toBeUndefined();
        } else if (s.kind === "advance") {
          clock.advance(s.ms);
        }
        // What expired: exactly the open leases whose time has come, each once.
        for (const owner of expired.splice(0)) {
          const lease = model.get(owner.name)!;
          expect(lease.open).toBe(true);
          lease.open = false;
        }
        for (const lease of model.values()) {
          if (lease.open) expect(lease.expiresAt).toBeGreaterThan(clock.now());
          expect(book.ownerOf(lease.id)).toBe(lease.open ? lease.owner : undefined);
        }
        expect(book.size).toBe([...model.values()].filter((l) => l.open).length);
      }
    }),
    { numRuns: 60 },
  );
});

it("keeps its ring past its first capacity, and expires leases opened before and after the ring grew", () => {
  const clock = new ManualClock(0);
  const expired: number[] = [];
  const book = new LeaseBook<number>(clock, (owner) => expired.push(owner));
  const ids = Array.from({ length: 5000 }, (_, i) => book.idOf(book.open(i, 100 + i)));
  for (let i = 0; i < 5000; i += 7) expect(book.end(ids[i])).toBe(i);
  expect(book.ownerOf(ids[4999])).toBe(4999);
  clock.advance(100 + 2500);
  expect(expired).toEqual(Array.from({ length: 2501 }, (_, i) => i).filter((i) => i % 7 !== 0));
  expect(book.size).toBe(5000 - 715 - expired.length);
  // Every lease over: the ring gives its room back, and leases opened after still work.
  clock.advance(10_000);
  expect(book.size).toBe(0);
  expect(book.ownerOf(ids[4999])).toBeUndefined();
  expired.length = 0;
  const later = Array.from({ length: 3000 }, (_, i) => book.idOf(book.open(10_000 + i, clock.now() + 10 + (i % 3))));
  expect(new Set([...ids, ...later]).size).toBe(8000);
  expect(book.ownerOf(later[2999])).toBe(12_999);
  for (let i = 0; i < 3000; i += 2) book.end(later[i]);
  clock.advance(12);
  expect(expired.sort((a, b) => a - b)).toEqual(Array.from({ length: 1500 }, (_, i) => 10_001 + 2 * i));
  expect(book.size).toBe(0);
});
