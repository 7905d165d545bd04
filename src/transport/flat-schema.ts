/**
 * The schemas keypool's flat codecs cover (flat-binary.ts writes them, flat-decoder.ts reads them)
 * and how each of their fields travels. A schema is flat when every field is a singular string,
 * bool, int32, uint32, int64, uint64 (as bigint) or open enum with implicit presence (proto3), or
 * a singular message field whose schema is itself flat. Anything else is left to protobuf-es's
 * toBinary and fromBinary.
 */
import { ScalarType, type DescField } from "@bufbuild/protobuf";

export type FlatKind = "string" | "bool" | "int32" | "uint32" | "int64" | "uint64" | "message";

export const WIRE_VARINT = 0;
export const WIRE_LENGTH_DELIMITED = 2;

/** FeatureSet.FieldPresence.IMPLICIT: proto3 fields without `optional`. */
const IMPLICIT = 2;

const SCALAR_KINDS = new Map<ScalarType, FlatKind>([
  [ScalarType.STRING, "string"],
  [ScalarType.BOOL, "bool"],
  [ScalarType.INT32, "int32"],
  [ScalarType.UINT32, "uint32"],
  [ScalarType.INT64, "int64"],
  [ScalarType.UINT64, "uint64"],
]);

/**
 * How `field` travels in a flat schema (an enum as an int32), or null when it keeps the schema
 * from being flat. A message field's answer says only that the field itself qualifies: whether
 * its schema is flat is for the caller to find, as it makes the schema's plan.
 */
export function flatKindOf(field: DescField): { kind: FlatKind; wireType: number } | null {
  if (field.oneof) return null;
  switch (field.fieldKind) {
    case "scalar": {
      if (field.presence !== IMPLICIT || field.longAsString) return null;
      const kind = SCALAR_KINDS.get(field.scalar);
      if (!kind) return null;
      return { kind, wireType: kind === "string" ? WIRE_LENGTH_DELIMITED : WIRE_VARINT };
    }
    case "enum":
      // Open enums (proto3) keep any number; closed ones fromBinary checks.
      if (field.presence !== IMPLICIT || !field.enum.open) return null;
      return { kind: "int32", wireType: WIRE_VARINT };
    case "message":
      return field.delimitedEncoding ? null : { kind: "message", wireType: WIRE_LENGTH_DELIMITED };
    default:
      return null;
  }
}

/** Thrown inside a flat codec when a value or the bytes need protobuf-es's own handling. */
class NotFlat {}
export const NOT_FLAT = new NotFlat();
