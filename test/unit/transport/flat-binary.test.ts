/**
 * The native port encodes the hot unary responses with flatEncoder (src/transport/flat-binary.ts):
 * a client must receive exactly the bytes protobuf-es's toBinary writes, for any value of every
 * field, and messages the flat encoder does not cover (lists, oneofs, unknown fields, values
 * toBinary refuses) must come out as toBinary has them, or fail as toBinary fails.
 */
import fc from "fast-check";
import { create, toBinary, type DescMessage, type Message } from "@bufbuild/protobuf";
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import {
  GetLockoutPeriodResponseSchema,
  IncrementUsageResponseSchema,
  LeaseResponseSchema,
  ListKeysResponseSchema,
  ReportRateLimitResponseSchema,
  WatchKeysResponseSchema,
} from "../../../gen/ts/keypool/v1/keypool_pb";
import { HealthCheckResponseSchema } from "../../../gen/ts/grpc/health/v1/health_pb";
import { flatEncoder } from "../../../src/transport/flat-binary";

function encodeBoth(schema: DescMessage, message: Message) {
  const encode = flatEncoder(schema);
  if (!encode) throw new Error(`${schema.typeName} has no flat encoder`);
  return { flat: Buffer.from(encode(message)), expected: Buffer.from(toBinary(schema, message)) };
}

const text = fc.string({ unit: "binary", maxLength: 80 });
const int32 = fc.integer({ min: -0x80000000, max: 0x7fffffff });
const int64 = fc.bigInt({ min: -(2n ** 63n), max: 2n ** 63n - 1n });
const timestamp = fc.option(fc.record({ seconds: int64, nanos: int32 }), { nil: undefined });
const duration = timestamp;

describe("flat encoding of the hot unary responses", () => {
  it("writes toBinary's bytes for any LeaseResponse", () => {
    fc.assert(
      fc.property(
        fc.record({ key: text, keyHash: text, provider: int32, modelFamily: text, organizationId: text, leaseId: text, leaseExpiresAt: timestamp }),
        (init) => {
          const { flat, expected } = encodeBoth(LeaseResponseSchema, create(LeaseResponseSchema, init));
          expect(flat).toEqual(expected);
        },
      ),
      { numRuns: 500 },
    );
  });

  it("writes toBinary's bytes for a message longer than its scratch buffer, and for the next one", () => {
    const long = create(LeaseResponseSchema, { key: "k".repeat(10_000), organizationId: "ü".repeat(3_000), leaseExpiresAt: timestampFromMs(1) });
    const short = create(LeaseResponseSchema, { key: "sk-1", leaseId: "l1" });
    for (const message of [long, short, long]) {
      const { flat, expected } = encodeBoth(LeaseResponseSchema, message);
      expect(flat).toEqual(expected);
    }
  });

  it("writes toBinary's bytes for a real lease, with every field set", () => {
    const message = create(LeaseResponseSchema, {
      key: "sk-bench-0000000000000000000000000000000000000000000",
      keyHash: "oai-0123456789abcdef",
      provider: 1,
      modelFamily: "türbo",
      organizationId: "org-🔑",
      leaseId: "lease-0000000000000001",
      leaseExpiresAt: timestampFromMs(Date.UTC(2026, 11, 1, 12, 0, 0, 123)),
    });
    const { flat, expected } = encodeBoth(LeaseResponseSchema, message);
    expect(flat).toEqual(expected);
  });

  it("writes toBinary's bytes for the other small responses", () => {
    fc.assert(
      fc.property(timestamp, duration, fc.boolean(), int32, (readyAt, lockout, noActiveKeys, status) => {
        for (const [schema, message] of [
          [ReportRateLimitResponseSchema, create(ReportRateLimitResponseSchema, { readyAt })],
          [GetLockoutPeriodResponseSchema, create(GetLockoutPeriodResponseSchema, { lockout, noActiveKeys })],
          [HealthCheckResponseSchema, create(HealthCheckResponseSchema, { status })],
          [IncrementUsageResponseSchema, create(IncrementUsageResponseSchema)],
        ] as [DescMessage, Message][]) {
          const { flat, expected } = encodeBoth(schema, message);
          expect(flat).toEqual(expected);
        }
      }),
    );
    expect(flatEncoder(HealthCheckResponseSchema)).toBeDefined();
  });

  it("leaves messages with lists and oneofs to toBinary", () => {
    expect(flatEncoder(ListKeysResponseSchema)).toBeUndefined();
    expect(flatEncoder(WatchKeysResponseSchema)).toBeUndefined();
  });

  it("hands a message with unknown fields to toBinary, which writes them", () => {
    const message = create(LeaseResponseSchema, { key: "sk-1", leaseExpiresAt: timestampFromMs(1000) });
    message.$unknown = [{ no: 99, wireType: 2, data: new Uint8Array([1, 2, 3]) }];
    message.leaseExpiresAt!.$unknown = [{ no: 7, wireType: 0, data: new Uint8Array([5]) }];
    const { flat, expected } = encodeBoth(LeaseResponseSchema, message);
    expect(flat).toEqual(expected);
    expect(flat.includes(Buffer.from([1, 2, 3]))).toBe(true);
  });

  it("fails where toBinary fails: a value outside its field's range", () => {
    const message = create(LeaseResponseSchema, { provider: 2 ** 40 });
    expect(() => toBinary(LeaseResponseSchema, message)).toThrow();
    expect(() => flatEncoder(LeaseResponseSchema)!(message)).toThrow();
  });
});
