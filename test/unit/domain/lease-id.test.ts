/**
 * A lease id is "<sequence number in base 36>-<16 random hex digits>" (src/domain/leases.ts): the
 * id a client gets back must be the same text for every sequence number and random bits.
 */
import fc from "fast-check";
import { leaseIdText } from "../../../src/domain/leases";

/** The 64 random bits as 16 hex digits: the two 32-bit halves' big-endian bytes. */
function bitsHex(hi: number, lo: number): string {
  const bytes = Buffer.alloc(8);
  bytes.writeUInt32BE(hi, 0);
  bytes.writeUInt32BE(lo, 4);
  return bytes.toString("hex");
}

it("writes the base-36 sequence number and the 64 random bits as 16 zero-padded hex digits", () => {
  fc.assert(
    fc.property(
      fc.oneof(fc.integer({ min: 1, max: 100_000 }), fc.maxSafeNat()),
      fc.integer({ min: 0, max: 0xffffffff }),
      fc.integer({ min: 0, max: 0xffffffff }),
      (seq, hi, lo) => {
        expect(leaseIdText(seq, hi, lo)).toBe(`${seq.toString(36)}-${bitsHex(hi, lo)}`);
      },
    ),
    { numRuns: 2000 },
  );
  expect(leaseIdText(1, 0, 0)).toBe("1-0000000000000000");
  expect(leaseIdText(36, 0xabcdef00, 0x0001ffff)).toBe("10-abcdef000001ffff");
});
