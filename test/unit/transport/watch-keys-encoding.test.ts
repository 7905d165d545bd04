/**
 * The binary fast path of WatchKeys (src/transport/watch-keys.ts): a status encoded once per
 * change (and a snapshot slice once for every watch that takes it) and carried as raw fields must
 * put on the wire exactly the bytes of the ordinary message, for any status, sequence and time.
 */
import fc from "fast-check";
import { equals, fromBinary, toBinary } from "@bufbuild/protobuf";
import { WatchKeysResponseSchema } from "../../../gen/ts/keypool/v1/keypool_pb";
import type { KeyStatus } from "../../../src/domain/types";
import { encodedBytes, encodingOf } from "../../../src/transport/pre-encoded";
import { watchEventToBinaryProto, watchEventToProto } from "../../../src/transport/watch-keys";
import type { WatchEvent } from "../../../src/watch/watch-subscription";
import { status } from "../watch/fake-pool";

const full: KeyStatus = status("oai-0123456789abcdef", {
  modelFamilies: ["turbo", "gpt4", "gpt4o"],
  organizationId: "org-1",
  trial: true,
  state: "disabled",
  stateReason: "probe-000042 ünïcode",
  readyAt: Date.UTC(2026, 10, 27, 21, 0, 0, 123),
  rateLimitedAt: Date.UTC(2026, 10, 27, 20, 59, 0, 1),
  lastUsed: Date.UTC(2026, 10, 27, 20, 58, 0, 999),
  lastChecked: 1,
  promptCount: 12345,
  usage: { turbo: { inputTokens: 1200, outputTokens: 300, prompts: 7 }, gpt4: { inputTokens: 0, outputTokens: 0, prompts: 0 } },
  inFlight: 3,
  leaseCount: 2 ** 40,
});

/**
 * The ordinary bytes, and the fast path's as both transports write them: toBinary of the message
 * (connect-node) and the encoding it carries (the native port's serializer), which must agree.
 */
function bothWays(event: WatchEvent) {
  const ordinary = toBinary(WatchKeysResponseSchema, watchEventToProto(event));
  const message = watchEventToBinaryProto(event);
  const fast = toBinary(WatchKeysResponseSchema, message);
  const carried = encodedBytes(message);
  if (carried && !Buffer.from(fast).equals(carried)) throw new Error("the carried encoding differs from toBinary's");
  return { ordinary, fast, carried };
}

describe("WatchKeys binary encoding, once per change", () => {
  test("an update: the same bytes as the ordinary message, and it decodes to the same message", () => {
    const event: WatchEvent = { type: "updated", sequence: 300, time: Date.UTC(2026, 10, 27, 21, 30, 0, 5), status: full };
    const { ordinary, fast } = bothWays(event);
    expect(Buffer.from(fast).equals(Buffer.from(ordinary))).toBe(true);
    const decoded = fromBinary(WatchKeysResponseSchema, fast);
    expect(equals(WatchKeysResponseSchema, decoded, watchEventToProto(event))).toBe(true);
    expect(decoded.sequence).toBe(300n);
    expect(decoded.event.case).toBe("updated");
  });

  test("one status shared by many watches: each message has the watch's own sequence and time, and carries its encoding", () => {
    for (const sequence of [1, 127, 128, 300, 2 ** 31, 2 ** 40, Number.MAX_SAFE_INTEGER]) {
      const event: WatchEvent = { type: "updated", sequence, time: 2000 + sequence % 1000, status: full };
      const { ordinary, carried } = bothWays(event);
      expect(carried).toBeDefined();
      expect(Buffer.from(ordinary).equals(carried!)).toBe(true);
      expect(fromBinary(WatchKeysResponseSchema, carried!).sequence).toBe(BigInt(sequence));
    }
  });

  test("property: any sequence, time and status encode to the ordinary bytes", () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: Number.MAX_SAFE_INTEGER }),
        fc.integer({ min: 0, max: 4_102_444_800_000 }),
        fc.nat(),
        fc.string(),
        (sequence, time, n, reason) => {
          const s = { ...full, promptCount: n, stateReason: reason, readyAt: time };
          const { ordinary, fast } = bothWays({ type: "updated", sequence, time, status: s });
          expect(Buffer.from(fast).equals(Buffer.from(ordinary))).toBe(true);
        },
      ),
      { numRuns: 300 },
    );
  });

  test("snapshot slices and batched changes: the ordinary bytes; heartbeats and removals take the ordinary path", () => {
    const other = { ...full, keyHash: "oai-fedcba9876543210", usage: {} };
    for (const event of [
      { type: "snapshot", sequence: 1, time: 5, keys: [full, other], more: true },
      { type: "snapshot", sequence: 1, time: 5, keys: [other], more: false },
      { type: "snapshot", sequence: 1, time: 5, keys: [], more: false },
      { type: "changes", sequence: 9, time: 6, updated: [full, other], removed: ["oai-0000000000000001", "ant-ünï"] },
      { type: "changes", sequence: 9, time: 6, updated: [], removed: ["oai-0000000000000001"] },
      { type: "removed", sequence: 2, time: 6, keyHash: full.keyHash },
      { type: "heartbeat", sequence: 3, time: 7 },
    ] as WatchEvent[]) {
      const { ordinary, fast } = bothWays(event);
      expect(Buffer.from(fast).equals(Buffer.from(ordinary))).toBe(true);
    }
    expect(encodingOf(watchEventToBinaryProto({ type: "heartbeat", sequence: 3, time: 7 }))).toBeUndefined();
    expect(encodingOf(watchEventToBinaryProto({ type: "removed", sequence: 3, time: 7, keyHash: "oai-a" }))).toBeUndefined();
  });

  test("every watch's message for one slice carries that slice's body itself, not a copy: its own bytes are only sequence, time and tag", () => {
    const keys = [full, { ...full, keyHash: "oai-fedcba9876543210" }];
    const parts = [1, 2, 300].map((sequence) => encodingOf(watchEventToBinaryProto({ type: "snapshot", sequence, time: 5 + sequence, keys, more: true }))!);
    for (const p of parts.slice(1)) expect(p[p.length - 1]).toBe(parts[0]![parts[0]!.length - 1]);
    for (const p of parts) expect(p.slice(0, -1).reduce((n, part) => n + part.byteLength, 0)).toBeLessThan(32);
  });

  test("batches of the same statuses share a body, and a batch that differs in order, length or removals gets its own", () => {
    const a = { ...full, keyHash: "oai-a" };
    const b = { ...full, keyHash: "oai-b" };
    const c = { ...full, keyHash: "oai-c" };
    // Interleaved as the watches of several filters woken in one turn would take them.
    const batches: [KeyStatus[], string[]][] = [
      [[a, b, c], []],
      [[a, b], []],
      [[b, a, c], []],
      [[a, b, c], ["oai-x"]],
      [[a, b, c], ["oai-y"]],
      [[a, b, c], []],
      [[], ["oai-x"]],
      [[a, b], []],
    ];
    batches.forEach(([updated, removed], i) => {
      const event: WatchEvent = { type: "changes", sequence: i + 1, time: 1000 + i, updated: [...updated], removed: [...removed] };
      const { ordinary, fast, carried } = bothWays(event);
      expect(Buffer.from(fast).equals(Buffer.from(ordinary))).toBe(true);
      expect(carried!.equals(Buffer.from(ordinary))).toBe(true);
      const decoded = fromBinary(WatchKeysResponseSchema, carried!);
      expect(decoded.event.case).toBe("changes");
      if (decoded.event.case !== "changes") return;
      expect(decoded.event.value.updated.map((s) => s.keyHash)).toEqual(updated.map((s) => s.keyHash));
      expect(decoded.event.value.removedKeyHashes).toEqual(removed);
    });
  });

  test("property: any batch of statuses and removals encodes to the ordinary bytes", () => {
    fc.assert(
      fc.property(
        fc.array(fc.record({ hash: fc.string({ minLength: 1 }), n: fc.nat(), reason: fc.string() }), { maxLength: 8 }),
        fc.array(fc.string(), { maxLength: 8 }),
        fc.boolean(),
        (statuses, removed, more) => {
          const updated = statuses.map((x) => ({ ...full, keyHash: x.hash, promptCount: x.n, stateReason: x.reason }));
          for (const event of [
            { type: "changes", sequence: 4, time: 77, updated, removed },
            { type: "snapshot", sequence: 1, time: 77, keys: updated, more },
          ] as WatchEvent[]) {
            const { ordinary, fast } = bothWays(event);
            expect(Buffer.from(fast).equals(Buffer.from(ordinary))).toBe(true);
          }
        },
      ),
      { numRuns: 200 },
    );
  });
});
