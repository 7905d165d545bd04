/**
 * protobuf-es's fromBinary for the small, flat requests of the hot unary calls (LeaseRequest,
 * HealthCheckRequest, GetLockoutPeriodRequest...): the same message, read in one pass over the
 * bytes, where fromBinary wraps the message in a reflection object, looks up each field by number
 * through it, and makes a zero message by walking the descriptor on every call.
 *
 * A decoder is made once per message schema, and only for the flat schemas of
 * src/transport/flat-schema.ts (src/transport/flat-binary.ts writes the same schemas). It reads
 * only the plainest encoding: each field with its own wire type, varints of at most 32 bits,
 * strings of ASCII bytes, each message field once, no unknown field. Anything else (UTF-8 beyond ASCII, which fromBinary checks,
 * unknown fields, which it keeps, a message field sent twice, which it merges, a wrong wire type,
 * truncated or malformed bytes) is handed to fromBinary, which decodes or refuses it as ever.
 * test/unit/transport/flat-decoder.test.ts compares the messages with fromBinary's.
 */
import { create, fromBinary, protoInt64, type DescField, type DescMessage, type Message } from "@bufbuild/protobuf";
import { flatKindOf, NOT_FLAT, WIRE_LENGTH_DELIMITED, type FlatKind } from "./flat-schema";

/** Decodes a message of its schema; the message is fromBinary's, and so is any error. */
export type FlatDecoder = (bytes: Uint8Array) => Message;

interface FieldPlan {
  kind: FlatKind;
  name: string;
  wireType: number;
  nested?: MessagePlan;
}

interface MessagePlan {
  /** A zero message of the schema (create's), copied for each message read: the same fields in the same order. */
  zero: Message;
  /** By field number. */
  byNumber: (FieldPlan | undefined)[];
}

const plans = new Map<DescMessage, MessagePlan | null>();

/** The flat decoder of `schema`, or undefined when the schema has a field it does not cover. */
export function flatDecoder(schema: DescMessage): FlatDecoder | undefined {
  const plan = planOf(schema, new Set());
  if (!plan) return undefined;
  return (bytes) => {
    try {
      return readMessage(plan, bytes, 0, bytes.length);
    } catch (err) {
      if (err !== NOT_FLAT) throw err;
      return fromBinary(schema, bytes);
    }
  };
}

/** Field numbers above this leave the schema to fromBinary (the plan is an array by number). */
const MAX_FIELD_NUMBER = 64;

function planOf(schema: DescMessage, visiting: Set<DescMessage>): MessagePlan | null {
  const known = plans.get(schema);
  if (known !== undefined) return known;
  if (visiting.has(schema)) return null; // recursive schemas are left to fromBinary
  visiting.add(schema);
  let plan: MessagePlan | null = { zero: create(schema), byNumber: [] };
  for (const field of schema.fields) {
    const fieldPlan = field.number <= MAX_FIELD_NUMBER ? fieldPlanOf(field, visiting) : null;
    if (!fieldPlan) {
      plan = null;
      break;
    }
    plan.byNumber[field.number] = fieldPlan;
  }
  visiting.delete(schema);
  plans.set(schema, plan);
  return plan;
}

function fieldPlanOf(field: DescField, visiting: Set<DescMessage>): FieldPlan | null {
  const flat = flatKindOf(field);
  if (!flat) return null;
  const plan = { kind: flat.kind, name: field.localName, wireType: flat.wireType };
  if (field.fieldKind !== "message") return plan;
  const nested = planOf(field.message, visiting);
  return nested ? { ...plan, nested } : null;
}

/** Where the reading stands: the offset, passed along instead of a reader object. */
let at = 0;

/** A varint of at most 32 bits (5 bytes, the last at most 0x0f) at `at`; anything longer is not flat. */
function varint(bytes: Uint8Array, end: number): number {
  let value = 0;
  for (let shift = 0; shift < 35; shift += 7) {
    if (at >= end) throw NOT_FLAT;
    const b = bytes[at++];
    if (shift === 28) {
      if (b > 0x0f) throw NOT_FLAT;
      return value + b * 0x10000000;
    }
    value |= (b & 0x7f) << shift;
    if (b < 0x80) return value >>> 0;
  }
  throw NOT_FLAT;
}

/** The ASCII string of bytes [start, end), or not flat (fromBinary checks and decodes UTF-8). */
function ascii(bytes: Uint8Array, start: number, end: number): string {
  for (let i = start; i < end; i++) if (bytes[i] >= 0x80) throw NOT_FLAT;
  // ASCII reads the same as Latin-1; a Buffer (what grpc-js hands over) makes the string in one call.
  if (Buffer.isBuffer(bytes)) return bytes.toString("latin1", start, end);
  let text = "";
  for (let i = start; i < end; i++) text += String.fromCharCode(bytes[i]);
  return text;
}

function readMessage(plan: MessagePlan, bytes: Uint8Array, start: number, end: number): Message {
  const message = { ...plan.zero } as Record<string, unknown>;
  at = start;
  while (at < end) {
    const tag = varint(bytes, end);
    const field = plan.byNumber[tag >>> 3];
    if (field === undefined || (tag & 7) !== field.wireType) throw NOT_FLAT;
    if (field.wireType === WIRE_LENGTH_DELIMITED) {
      const length = varint(bytes, end);
      const valueEnd = at + length;
      if (valueEnd > end) throw NOT_FLAT;
      if (field.kind === "string") message[field.name] = ascii(bytes, at, valueEnd);
      else {
        // A message field sent twice is merged by fromBinary.
        if (Object.prototype.hasOwnProperty.call(message, field.name)) throw NOT_FLAT;
        message[field.name] = readMessage(field.nested!, bytes, at, valueEnd);
      }
      at = valueEnd;
      continue;
    }
    const value = varint(bytes, end);
    switch (field.kind) {
      case "bool":
        message[field.name] = value !== 0;
        break;
      case "int32":
        message[field.name] = value | 0;
        break;
      case "uint32":
        message[field.name] = value;
        break;
      case "int64":
        message[field.name] = protoInt64.dec(value | 0, 0);
        break;
      case "uint64":
        message[field.name] = protoInt64.uDec(value | 0, 0);
        break;
    }
  }
  return message as unknown as Message;
}
