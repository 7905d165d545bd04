/**
 * protobuf-es encodes every string field with TextEncoder.encode, which gives each string a
 * backing store of its own. Node's Buffer.from writes short strings into a shared pool instead,
 * and the bytes are the same (lone surrogates become U+FFFD either way). The binary writer copies
 * each string's bytes into the message it returns, so no slice of the pool outlives the call.
 * A Lease response has six strings; encoding them is a visible share of a Lease's server time on
 * both ports (BENCHMARKS.md, the native gRPC port).
 *
 * The setting is protobuf-es's own and process-wide (configureTextEncoding); decoding is left
 * as it is.
 */
import { configureTextEncoding, getTextEncoding } from "@bufbuild/protobuf/wire";

export function encodeStringsWithBuffer(): void {
  const current = getTextEncoding();
  configureTextEncoding({
    checkUtf8: current.checkUtf8,
    decodeUtf8: current.decodeUtf8,
    encodeUtf8: (text) => Buffer.from(text, "utf8"),
  });
}
