/**
 * Client input quoted back in an error message or a log line. Any text a client sends may be
 * huge (a 1 MB family name, a 100 KB number): repeating it whole makes an error larger than
 * standard clients accept in a header (grpcio resets the stream) and fills the logs. Quotes are
 * cut to a bound, with a marker that says how long the value really was.
 */

/** The most of one client value that an error message repeats. */
export const ECHO_LIMIT_BYTES = 128;

/** The start of `text` that fits `limitBytes` UTF-8 bytes, whole characters only; undefined when all of it fits. */
function cutToBytes(text: string, limitBytes: number): string | undefined {
  // A string of at most limitBytes/3 UTF-16 units cannot exceed limitBytes bytes.
  if (text.length * 3 <= limitBytes) return undefined;
  const bytes = Buffer.from(text, "utf8");
  if (bytes.length <= limitBytes) return undefined;
  let end = limitBytes;
  // Step back over continuation bytes (10xxxxxx) so that no character is cut in half.
  while (end > 0 && (bytes[end] & 0xc0) === 0x80) end--;
  return bytes.subarray(0, end).toString("utf8");
}

const marker = (text: string) => `…[truncated: ${Buffer.byteLength(text, "utf8")} bytes in all]`;

/** `text` cut to at most `limitBytes` UTF-8 bytes, plus a marker naming its full size when cut. */
export function truncated(text: string, limitBytes: number): string {
  const cut = cutToBytes(text, limitBytes);
  return cut === undefined ? text : cut + marker(text);
}

/** A client value in quotes (JSON string syntax, so control characters show), bounded. */
export function quoted(value: unknown): string {
  const text = typeof value === "string" ? value : String(value);
  const cut = cutToBytes(text, ECHO_LIMIT_BYTES);
  return cut === undefined ? JSON.stringify(text) : JSON.stringify(cut) + marker(text);
}
