/**
 * The native port decodes the hot unary requests with flatDecoder (src/transport/flat-decoder.ts):
 * the handler must get exactly the message protobuf-es's fromBinary makes (the same fields, in
 * the same order, with the same values) for any bytes a client sends, and bytes fromBinary
 * refuses must be refused with fromBinary's own error.
 */
import fc from "fast-check";
import { create, fromBinary, toBinary, type DescMessage, type Message } from "@bufbuild/protobuf";
import {
  DisableKeyRequestSchema,
  GetLockoutPeriodRequestSchema,
  IncrementUsageRequestSchema,
  LeaseRequestSchema,
  ListKeysRequestSchema,
  ReportRateLimitRequestSchema,
} from "../../../gen/ts/keypool/v1/keypool_pb";
import { HealthCheckRequestSchema } from "../../../gen/ts/grpc/health/v1/health_pb";
import { flatDecoder } from "../../../src/transport/flat-decoder";

function decoderOf(schema: DescMessage) {
  const decode = flatDecoder(schema);
  if (!decode) throw new Error(`${schema.typeName} has no flat decoder`);
  return decode;
}

/** Both decodings of `bytes`: the message (with its own property order) or the error's message. */
function decodeBoth(schema: DescMessage, bytes: Uint8Array) {
  const outcome = (decode: () => Message) => {
    try {
      const message = decode();
      return { message, keys: Object.keys(message) };
    } catch (err) {
      return { error: (err as Error).message };
    }
  };
  const decode = decoderOf(schema);
  return { flat: outcome(() => decode(bytes)), expected: outcome(() => fromBinary(schema, bytes)) };
}

const text = fc.string({ unit: "binary", maxLength: 40 });
const int32 = fc.integer({ min: -0x80000000, max: 0x7fffffff });
const int64 = fc.bigInt({ min: -(2n ** 63n), max: 2n ** 63n - 1n });
const uint64 = fc.bigInt({ min: 0n, max: 2n ** 64n - 1n });
const duration = fc.option(fc.record({ seconds: int64, nanos: int32 }), { nil: undefined });
const asBuffer = (bytes: Uint8Array) => Buffer.from(bytes);

describe("flat decoding of the hot unary requests", () => {
  it("makes fromBinary's message for any LeaseRequest, from a Buffer or a Uint8Array", () => {
    fc.assert(
      fc.property(fc.record({ model: text, provider: int32, maxWait: duration }), fc.boolean(), (init, buffer) => {
        const bytes = toBinary(LeaseRequestSchema, create(LeaseRequestSchema, init));
        const { flat, expected } = decodeBoth(LeaseRequestSchema, buffer ? asBuffer(bytes) : bytes);
        expect(flat).toEqual(expected);
      }),
      { numRuns: 1000 },
    );
  });

  it("makes fromBinary's message for a plain Lease, the fields in the same order", () => {
    const bytes = toBinary(LeaseRequestSchema, create(LeaseRequestSchema, { model: "gpt-3.5-turbo", provider: 1, maxWait: { seconds: 2n, nanos: 5 } }));
    const decoded = decoderOf(LeaseRequestSchema)(asBuffer(bytes));
    expect(decoded).toEqual(fromBinary(LeaseRequestSchema, bytes));
    expect(Object.keys(decoded)).toEqual(Object.keys(fromBinary(LeaseRequestSchema, bytes)));
    expect(decoded).toMatchObject({ model: "gpt-3.5-turbo", provider: 1, maxWait: { seconds: 2n, nanos: 5 } });
    expect(Object.keys(decoderOf(LeaseRequestSchema)(new Uint8Array(0)))).toEqual(Object.keys(create(LeaseRequestSchema)));
  });

  it("makes fromBinary's message for the other flat requests", () => {
    fc.assert(
      fc.property(
        fc.record({ keyHash: text, model: text, inputTokens: uint64, outputTokens: uint64, leaseId: text }),
        fc.record({ model: text, provider: int32 }),
        fc.record({ keyHash: text, state: int32, reason: text }),
        fc.record({ service: text }),
        (usage, lockout, disable, health) => {
          for (const [schema, init] of [
            [IncrementUsageRequestSchema, usage],
            [GetLockoutPeriodRequestSchema, lockout],
            [DisableKeyRequestSchema, disable],
            [HealthCheckRequestSchema, health],
          ] as const) {
            const bytes = toBinary(schema as DescMessage, create(schema as DescMessage, init));
            const { flat, expected } = decodeBoth(schema, asBuffer(bytes));
            expect(flat).toEqual(expected);
          }
        },
      ),
      { numRuns: 300 },
    );
  });

  it("agrees with fromBinary on any bytes: unknown fields, repeats, wrong wire types, truncation, bad UTF-8", () => {
    const lease = toBinary(LeaseRequestSchema, create(LeaseRequestSchema, { model: "gpt-4o", provider: 2, maxWait: { seconds: 1n } }));
    const someBytes = fc.oneof(
      fc.uint8Array({ maxLength: 40 }),
      // A valid request with bytes appended, cut short, or changed in one place.
      fc.tuple(fc.uint8Array({ maxLength: 12 }), fc.nat({ max: lease.length })).map(([tail, cut]) => Buffer.concat([lease.subarray(0, cut), tail])),
      fc.tuple(fc.nat({ max: lease.length - 1 }), fc.integer({ min: 0, max: 255 })).map(([i, b]) => {
        const changed = Buffer.from(lease);
        changed[i] = b;
        return changed;
      }),
    );
    fc.assert(
      fc.property(someBytes, (bytes) => {
        const { flat, expected } = decodeBoth(LeaseRequestSchema, asBuffer(bytes));
        expect(flat).toEqual(expected);
      }),
      { numRuns: 3000 },
    );
  });

  it("keeps unknown fields and merges a repeated message field, as fromBinary does", () => {
    const unknown = Buffer.concat([Buffer.from([0x0a, 0x02, 0x61, 0x62]), Buffer.from([0x78, 0x05])]); // model "ab", field 15 = 5
    const twice = Buffer.from([0x1a, 0x02, 0x08, 0x03, 0x1a, 0x02, 0x10, 0x07]); // max_wait {seconds 3} then {nanos 7}
    const longVarint = Buffer.from([0x10, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01]); // provider -1
    for (const bytes of [unknown, twice, longVarint]) {
      const { flat, expected } = decodeBoth(LeaseRequestSchema, bytes);
      expect(flat).toEqual(expected);
    }
    expect(decoderOf(LeaseRequestSchema)(twice)).toMatchObject({ maxWait: { seconds: 3n, nanos: 7 } });
    expect((decoderOf(LeaseRequestSchema)(unknown) as { $unknown?: unknown[] }).$unknown).toHaveLength(1);
    expect(decoderOf(LeaseRequestSchema)(longVarint)).toMatchObject({ provider: -1 });
  });

  it("leaves schemas with lists or maps to fromBinary", () => {
    expect(flatDecoder(ListKeysRequestSchema)).toBeUndefined();
    expect(flatDecoder(ReportRateLimitRequestSchema)).toBeUndefined();
  });
});
