/**
 * Protobuf varints of non-negative integers up to 2^53, for the encoders that write protobuf
 * binary by hand (src/transport/flat-binary.ts, key-status-binary.ts, watch-keys.ts). Values
 * under 2^31 take the bit-shift loop; larger ones divide, as bit operators hold 32 bits.
 */

/** Bytes of a non-negative integer (at most 2^53) as a varint. */
export function varintLength(value: number): number {
  if (value < 0x80) return 1;
  if (value < 0x4000) return 2;
  if (value < 0x200000) return 3;
  if (value < 0x10000000) return 4;
  let n = 5;
  for (value = Math.floor(value / 0x800000000); value > 0; value = Math.floor(value / 0x80)) n++;
  return n;
}

/** Writes a non-negative integer (at most 2^53) as a varint at `at`; returns the end. */
export function writeVarint(out: Uint8Array, at: number, value: number): number {
  while (value > 0x7fffffff) {
    out[at++] = (value % 0x80) | 0x80;
    value = Math.floor(value / 0x80);
  }
  while (value > 0x7f) {
    out[at++] = (value & 0x7f) | 0x80;
    value >>>= 7;
  }
  out[at++] = value;
  return at;
}
