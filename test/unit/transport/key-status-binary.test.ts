/**
 * The hand-written KeyStatus writer (src/transport/key-status-binary.ts) that WatchKeys encodes
 * snapshots and changes with (and the Timestamp every message carries): for any status, exactly the bytes protobuf-es's toBinary writes for
 * the converted message, and a message every decoder reads back as the status.
 */
import fc from "fast-check";
import { fromBinary, toBinary } from "@bufbuild/protobuf";
import { BinaryReader, BinaryWriter } from "@bufbuild/protobuf/wire";
import { timestampFromMs, TimestampSchema } from "@bufbuild/protobuf/wkt";
import { KeyStatusSchema } from "../../../gen/ts/keypool/v1/keypool_pb";
import type { KeyState, KeyStatus, ProviderId } from "../../../src/domain/types";
import { keyStatusToProto } from "../../../src/transport/convert";
import { keyStatusBinary, keyStatusBinaryDelimited, timestampBinaryDelimited } from "../../../src/transport/key-status-binary";
import { status } from "../watch/fake-pool";

const PROVIDERS: ProviderId[] = ["openai", "anthropic", "google", "mistral", "azure", "bedrock", "vertex"];
const STATES: KeyState[] = ["active", "disabled", "revoked", "over_quota"];

function ordinary(s: KeyStatus): Uint8Array {
  return toBinary(KeyStatusSchema, keyStatusToProto(s));
}

function expectSameBytes(s: KeyStatus): void {
  const expected = Buffer.from(ordinary(s));
  expect(Buffer.from(keyStatusBinary(s)).toString("hex")).toBe(expected.toString("hex"));
  // The delimited form is the length, then the same message.
  const delimited = keyStatusBinaryDelimited(s);
  const reader = new BinaryReader(delimited);
  expect(Buffer.from(reader.bytes()).equals(expected)).toBe(true);
  expect(reader.pos).toBe(delimited.length);
}

/** Strings of every kind: ASCII, multi-byte, astral, lone surrogates (written as U+FFFD). */
const text = fc.oneof(
  fc.string(),
  fc.string({ unit: "grapheme" }),
  fc.string({ unit: "binary" }),
  fc.constantFrom("", "a", "ünïcode", "\u{1F511}", "\ud800", "x\udfffy", "1", "0", "42", "constructor", "toString"),
);
/** Epoch milliseconds: never (0 or less), within the first second, and any whole millisecond. */
const millis = fc.oneof(fc.constantFrom(0, -5, 1, 999, 1000, 1001), fc.integer({ min: 0, max: 4_102_444_800_000 }), fc.maxSafeNat());
const counter = fc.oneof(fc.constantFrom(0, 1, 127, 128, 2 ** 31, 2 ** 32, 2 ** 32 + 1), fc.maxSafeNat());
const tokenUsage = fc.record({ inputTokens: counter, outputTokens: counter, prompts: counter });

const anyStatus: fc.Arbitrary<KeyStatus> = fc.record({
  keyHash: text,
  provider: fc.constantFrom(...PROVIDERS),
  modelFamilies: fc.array(text, { maxLength: 6 }),
  organizationId: text,
  trial: fc.boolean(),
  state: fc.constantFrom(...STATES),
  stateReason: text,
  readyAt: millis,
  holdUntil: millis,
  cooldownUntil: millis,
  rateLimitedAt: millis,
  lastUsed: millis,
  lastChecked: millis,
  promptCount: counter,
  usage: fc.dictionary(text, tokenUsage, { maxKeys: 6 }),
  inFlight: fc.oneof(fc.constantFrom(0, 1, 128, 0xffffffff), fc.nat()),
  leaseCount: counter,
});

describe("KeyStatus written by hand", () => {
  test("property: any status gives toBinary's bytes, plain and length-delimited", () => {
    fc.assert(fc.property(anyStatus, expectSameBytes), { numRuns: 2000 });
  });

  test("a full status decodes back to the converted message", () => {
    const s = status("oai-0123456789abcdef", {
      modelFamilies: ["turbo", "", "gpt4o"],
      organizationId: "org-1",
      trial: true,
      state: "over_quota",
      stateReason: "quota ünïcode \u{1F511}",
      readyAt: Date.UTC(2026, 10, 27, 21, 0, 0, 123),
      cooldownUntil: Date.UTC(2026, 10, 27, 21, 0, 0),
      rateLimitedAt: 999,
      lastUsed: 1000,
      lastChecked: 1,
      promptCount: Number.MAX_SAFE_INTEGER,
      usage: { "2": { inputTokens: 1, outputTokens: 0, prompts: 0 }, turbo: { inputTokens: 0, outputTokens: 0, prompts: 0 }, "1": { inputTokens: 5, outputTokens: 6, prompts: 7 } },
      inFlight: 0xffffffff,
      leaseCount: 2 ** 40,
    });
    expectSameBytes(s);
    const decoded = fromBinary(KeyStatusSchema, keyStatusBinary(s));
    expect(decoded.modelFamilies).toEqual(["turbo", "", "gpt4o"]);
    expect(decoded.cooldownUntil).toEqual({ $typeName: "google.protobuf.Timestamp", seconds: BigInt(s.cooldownUntil / 1000), nanos: 0 });
    expect(decoded.rateLimitedAt?.seconds).toBe(0n);
    expect(decoded.rateLimitedAt?.nanos).toBe(999_000_000);
    expect(Object.keys(decoded.usage)).toEqual(["1", "2", "turbo"]);
    expect(decoded.usage["turbo"]).toEqual({ $typeName: "keypool.v1.TokenUsage", inputTokens: 0n, outputTokens: 0n, prompts: 0n });
    expect(decoded.inFlight).toBe(0xffffffff);
    expect(decoded.leaseCount).toBe(2n ** 40n);
  });

  test("values the writer leaves to toBinary still give toBinary's bytes", () => {
    for (const patch of [
      { promptCount: 2 ** 60 },
      { leaseCount: 2 ** 53 },
      { usage: { turbo: { inputTokens: 2 ** 55, outputTokens: 0, prompts: 1 } } },
      { lastUsed: 1_700_000_000_000.5 },
      { usage: JSON.parse('{"__proto__": {"inputTokens": 3, "outputTokens": 0, "prompts": 1}, "turbo": {"inputTokens": 1, "outputTokens": 2, "prompts": 3}}') },
    ] as Partial<KeyStatus>[]) {
      expectSameBytes(status("oai-0123456789abcdef", patch));
    }
  });

  test("a status far larger than the scratch buffer is written whole, and the next one too", () => {
    const big = status("oai-0123456789abcdef", { stateReason: "é".repeat(100_000), modelFamilies: Array.from({ length: 2000 }, (_, i) => `family-${i}`) });
    expectSameBytes(big);
    expect(keyStatusBinary(big).length).toBeGreaterThan(200_000);
    expectSameBytes(status("oai-fedcba9876543210"));
  });
});

describe("Timestamp written by hand", () => {
  test("property: any time gives toBinary's bytes after their length", () => {
    const expected = (ms: number) => new BinaryWriter().bytes(toBinary(TimestampSchema, timestampFromMs(ms))).finish();
    fc.assert(
      fc.property(fc.oneof(fc.constantFrom(0, 1, 999, 1000, 1001, -1, -1500, 1.5), fc.maxSafeNat(), fc.integer({ min: -(2 ** 40), max: 2 ** 40 })), (ms) => {
        expect(Buffer.from(timestampBinaryDelimited(ms)).toString("hex")).toBe(Buffer.from(expected(ms)).toString("hex"));
      }),
      { numRuns: 1000 },
    );
  });

  test("each time is a copy of its own, not a view of a buffer written again", () => {
    const first = timestampBinaryDelimited(1_764_600_000_123);
    const copy = Buffer.from(first);
    timestampBinaryDelimited(2_000_000_000_999);
    keyStatusBinary(status("oai-0123456789abcdef", { stateReason: "x".repeat(100) }));
    expect(Buffer.from(first).equals(copy)).toBe(true);
  });
});
