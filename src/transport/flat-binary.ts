/**
 * protobuf-es's toBinary for the small, flat messages of the hot unary calls (LeaseResponse,
 * ReportRateLimitResponse, IncrementUsageResponse, GetLockoutPeriodResponse, HealthCheckResponse):
 * the same bytes, written in one pass and copied out at their size, where toBinary walks the message
 * through a reflection object (two Maps per message) and a writer that makes a Uint8Array per
 * string and per run of tag bytes, then copies them all into the result.
 *
 * An encoder is made once per message schema from its descriptor, and only for the flat schemas
 * of src/transport/flat-schema.ts. For any other schema (lists, maps, oneofs, explicit presence,
 * other scalar types) flatEncoder returns undefined; at run time a message with unknown fields or with a value toBinary would refuse
 * (not an integer of its field's range) is handed to toBinary, which writes or refuses it as
 * ever. test/unit/transport/flat-binary.test.ts compares the bytes with toBinary's.
 */
import { protoInt64, toBinary, type DescField, type DescMessage, type Message } from "@bufbuild/protobuf";
import { flatKindOf, NOT_FLAT, type FlatKind } from "./flat-schema";
import { varintLength, writeVarint } from "./varint";

/** Encodes a message of its schema; the bytes are toBinary's. */
export type FlatEncoder = (message: Message) => Buffer;

interface FieldPlan {
  kind: FlatKind;
  name: string;
  tag: number;
  /** The zero value of an enum (its first value), which proto3 does not write. */
  enumZero?: number;
  nested?: MessagePlan;
}

interface MessagePlan {
  fields: FieldPlan[];
}

const plans = new Map<DescMessage, MessagePlan | null>();

/** The flat encoder of `schema`, or undefined when the schema has a field it does not cover. */
export function flatEncoder(schema: DescMessage): FlatEncoder | undefined {
  const plan = planOf(schema, new Set());
  if (!plan) return undefined;
  return (message) => {
    try {
      const end = writeMessage(plan, message, 0);
      const bytes = Buffer.allocUnsafe(end);
      scratch.copy(bytes, 0, 0, end);
      return bytes;
    } catch (err) {
      if (err !== NOT_FLAT) throw err;
      const bytes = toBinary(schema, message);
      return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    } finally {
      if (scratch.length > SCRATCH_BYTES) scratch = Buffer.allocUnsafe(SCRATCH_BYTES);
    }
  };
}

/**
 * Where a message is written, in one pass, before it is copied out at its final size: a nested
 * message's length is known only once it is written. Shared by every encoder (encoding is
 * synchronous); it grows for a larger message and returns to this size after it.
 */
const SCRATCH_BYTES = 4096;
let scratch = Buffer.allocUnsafe(SCRATCH_BYTES);

/** Makes room for `bytes` more bytes at `pos`. */
function ensure(pos: number, bytes: number): void {
  if (pos + bytes <= scratch.length) return;
  const bigger = Buffer.allocUnsafe(Math.max(2 * scratch.length, pos + bytes));
  scratch.copy(bigger, 0, 0, pos);
  scratch = bigger;
}

function planOf(schema: DescMessage, visiting: Set<DescMessage>): MessagePlan | null {
  const known = plans.get(schema);
  if (known !== undefined) return known;
  if (visiting.has(schema)) return null; // recursive schemas are left to toBinary
  visiting.add(schema);
  const fields: FieldPlan[] = [];
  let plan: MessagePlan | null = { fields };
  for (const field of [...schema.fields].sort((a, b) => a.number - b.number)) {
    const fieldPlan = fieldPlanOf(field, visiting);
    if (!fieldPlan) {
      plan = null;
      break;
    }
    fields.push(fieldPlan);
  }
  visiting.delete(schema);
  plans.set(schema, plan);
  return plan;
}

function fieldPlanOf(field: DescField, visiting: Set<DescMessage>): FieldPlan | null {
  const flat = flatKindOf(field);
  if (!flat) return null;
  const tag = ((field.number << 3) | flat.wireType) >>> 0;
  if (field.fieldKind === "enum") return { kind: flat.kind, name: field.localName, tag, enumZero: field.enum.values[0].number };
  if (field.fieldKind !== "message") return { kind: flat.kind, name: field.localName, tag };
  const nested = planOf(field.message, visiting);
  return nested ? { kind: flat.kind, name: field.localName, tag, nested } : null;
}

type Fields = Record<string, unknown>;

/** The value of a field that toBinary writes, or undefined where it writes nothing. */
function valueToWrite(field: FieldPlan, message: Fields): unknown {
  const value = message[field.name];
  switch (field.kind) {
    case "string":
      if (typeof value !== "string") throw NOT_FLAT;
      return value === "" ? undefined : value;
    case "bool":
      if (typeof value !== "boolean") throw NOT_FLAT;
      return value ? value : undefined;
    case "int32":
      if (!Number.isInteger(value) || (value as number) < -0x80000000 || (value as number) > 0x7fffffff) throw NOT_FLAT;
      return value === (field.enumZero ?? 0) ? undefined : value;
    case "uint32":
      if (!Number.isInteger(value) || (value as number) < 0 || (value as number) > 0xffffffff) throw NOT_FLAT;
      return value === 0 ? undefined : value;
    case "int64":
    case "uint64":
      if (typeof value !== "bigint" && typeof value !== "string" && typeof value !== "number") throw NOT_FLAT;
      // Loose comparison, as protobuf-es's own zero test: 0n, 0 and "0".
      return value == 0 ? undefined : value;
    case "message":
      if (value === undefined || !Object.prototype.hasOwnProperty.call(message, field.name)) return undefined;
      if (typeof value !== "object" || value === null) throw NOT_FLAT;
      return value;
  }
}

/** Writes `message` into the scratch buffer at `pos`; returns the end. */
function writeMessage(plan: MessagePlan, message: Message, pos: number): number {
  if ((message as { $unknown?: unknown[] }).$unknown?.length) throw NOT_FLAT;
  for (const field of plan.fields) {
    const value = valueToWrite(field, message as unknown as Fields);
    if (value === undefined) continue;
    // A tag, then at most a 64-bit varint or a length (the string and the nested message make room for themselves).
    ensure(pos, 20);
    pos = writeVarint(scratch, pos, field.tag);
    switch (field.kind) {
      case "string":
        pos = writeString(value as string, pos);
        break;
      case "bool":
        scratch[pos++] = 1;
        break;
      case "int32":
        pos = (value as number) < 0 ? writeVarint64(scratch, pos, value as number, -1) : writeVarint(scratch, pos, value as number);
        break;
      case "uint32":
        pos = writeVarint(scratch, pos, value as number);
        break;
      case "int64":
      case "uint64": {
        const { lo, hi } = int64Of(field.kind, value as bigint | string | number);
        pos = writeVarint64(scratch, pos, lo, hi);
        break;
      }
      case "message": {
        // One byte for the length, which fits while the message is under 128 bytes (a Timestamp
        // always is); a longer one is moved up to make room for its longer length.
        const start = pos + 1;
        const end = writeMessage(field.nested!, value as Message, start);
        const length = end - start;
        const lengthBytes = varintLength(length);
        if (lengthBytes > 1) {
          ensure(end, lengthBytes - 1);
          scratch.copyWithin(start + lengthBytes - 1, start, end);
        }
        pos = writeVarint(scratch, pos, length) + length;
        break;
      }
    }
  }
  return pos;
}

/** Short ASCII strings (keys, hashes, ids) are copied by hand: two native calls per string cost more. */
const SHORT_STRING = 128;

/** A string field's length and UTF-8 bytes at `pos` (after its tag); returns the end. */
function writeString(text: string, pos: number): number {
  const n = text.length;
  if (n < SHORT_STRING) {
    ensure(pos, n + 1);
    let i = 0;
    for (; i < n; i++) {
      const c = text.charCodeAt(i);
      if (c >= 0x80) break;
      scratch[pos + 1 + i] = c;
    }
    if (i === n) {
      scratch[pos] = n; // one byte of length: n < 128
      return pos + 1 + n;
    }
  }
  const length = Buffer.byteLength(text, "utf8");
  pos = writeVarint(scratch, pos, length);
  ensure(pos, length);
  return pos + scratch.write(text, pos, length, "utf8");
}

/** The two 32-bit halves protobuf-es writes for an int64 or uint64 (it refuses what it cannot parse). */
function int64Of(kind: "int64" | "uint64", value: bigint | string | number): { lo: number; hi: number } {
  try {
    return kind === "int64" ? protoInt64.enc(value) : protoInt64.uEnc(value);
  } catch {
    throw NOT_FLAT;
  }
}

function writeVarint64(buffer: Buffer, pos: number, lo: number, hi: number): number {
  let low = lo >>> 0;
  let high = hi >>> 0;
  while (high !== 0 || low > 0x7f) {
    buffer[pos++] = (low & 0x7f) | 0x80;
    low = ((low >>> 7) | (high << 25)) >>> 0;
    high >>>= 7;
  }
  buffer[pos++] = low;
  return pos;
}
