/**
 * A lease id is "<sequence number in base 36>-<16 random hex digits>" (src/domain/leases.ts): the
 * id a client gets back must be the same text for every sequence number and random bits.
 */
import fc from "fast-check";
import { leaseIdText } from "../../../src/domain/leases";

const hex = (value: number, digits: number) => value.toString(16).padStart(digits, "0");

it("writes the base-36 sequence number and the 24, 24 and 16 random bits as zero-padded hex", () => {
  fc.assert(
    fc.property(
      fc.oneof(fc.integer({ min: 1, max: 100_000 }), fc.maxSafeNat()),
      fc.integer({ min: 0, max: 0xffffff }),
      fc.integer({ min: 0, max: 0xffffff }),
      fc.integer({ min: 0, max: 0xffff }),
      (seq, r0, r1, r2) => {
        expect(leaseIdText(seq, r0, r1, r2)).toBe(`${seq.toString(36)}-${hex(r0, 6)}${hex(r1, 6)}${hex(r2, 4)}`);
      },
    ),
    { numRuns: 2000 },
  );
  expect(leaseIdText(1, 0, 0, 0)).toBe("1-0000000000000000");
  expect(leaseIdText(36, 0xabcdef, 1, 0xffff)).toBe("10-abcdef000001ffff");
});
