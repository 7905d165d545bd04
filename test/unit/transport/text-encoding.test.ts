/**
 * The server encodes protobuf strings with Buffer (src/transport/text-encoding.ts): what goes on
 * the wire must be the bytes protobuf-es's default (TextEncoder) writes, for any string,
 * including multi-byte characters and lone surrogates, and a message must decode to what it was.
 */
import fc from "fast-check";
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { configureTextEncoding, getTextEncoding } from "@bufbuild/protobuf/wire";
import { LeaseResponseSchema } from "../../../gen/ts/keypool/v1/keypool_pb";
import { encodeStringsWithBuffer } from "../../../src/transport/text-encoding";

describe("protobuf strings encoded with Buffer", () => {
  const original = getTextEncoding();
  const encoder = new TextEncoder();
  afterEach(() => configureTextEncoding(original));

  it("writes the same bytes as TextEncoder for any string", () => {
    encodeStringsWithBuffer();
    const encodeUtf8 = getTextEncoding().encodeUtf8;
    for (const text of ["", "sk-0123", "ünïcode ✓ 🔑", "\ud800 lone", "tail \udfff"]) {
      expect(Buffer.from(encodeUtf8(text))).toEqual(Buffer.from(encoder.encode(text)));
    }
    fc.assert(
      fc.property(fc.string({ unit: "binary" }), (text) => {
        expect(Buffer.from(encodeUtf8(text))).toEqual(Buffer.from(encoder.encode(text)));
      }),
    );
  });

  it("gives a Lease response the bytes of the default encoding, and it decodes to itself", () => {
    const message = create(LeaseResponseSchema, {
      key: "sk-bench-0000000000000000000000000000000000000000000",
      keyHash: "oai-0123456789abcdef",
      modelFamily: "türbo",
      organizationId: "org-🔑",
      leaseId: "lease-1",
    });
    const expected = toBinary(LeaseResponseSchema, message);
    encodeStringsWithBuffer();
    const bytes = toBinary(LeaseResponseSchema, message);
    expect(Buffer.from(bytes)).toEqual(Buffer.from(expected));
    expect(fromBinary(LeaseResponseSchema, bytes)).toEqual(message);
  });
});
