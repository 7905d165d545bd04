/**
 * keypool.v1.KeyStatus in protobuf binary, written straight from the domain's status: the bytes of
 * `toBinary(KeyStatusSchema, keyStatusToProto(status))`, field for field; and the Timestamp every
 * WatchKeys message carries (property tests compare both with toBinary's,
 * test/unit/transport/key-status-binary.test.ts).
 *
 * WatchKeys encodes every key's status when a snapshot is first made, and a server that just
 * started runs protobuf-es's reflective writer cold: converting a status to a message (BigInts,
 * Timestamps, a map) and walking it field by field made the first snapshot slices the longest
 * turns of the event loop while many watches opened at once (BENCHMARKS.md §6). Here a status is
 * written into a scratch buffer kept for the process (bounded, below) and copied out once at its
 * exact size: one allocation per status, no intermediate objects.
 *
 * A status with a value this writer does not handle the way the reflective path does (a count
 * that is not a safe non-negative integer, a time that is not a whole millisecond, a usage family
 * named "__proto__", which an object literal cannot hold as its own key) takes the reflective path,
 * so the bytes stay those of the ordinary message, whatever they are.
 */
import { toBinary } from "@bufbuild/protobuf";
import { BinaryWriter } from "@bufbuild/protobuf/wire";
import { timestampFromMs, TimestampSchema } from "@bufbuild/protobuf/wkt";
import { KeyStatusSchema } from "../../gen/ts/keypool/v1/keypool_pb";
import type { KeyStatus } from "../domain/types";
import { keyStateToProto, keyStatusToProto, providerToProto } from "./convert";
import { varintLength, writeVarint } from "./varint";

/** Tags of keypool.v1.KeyStatus: (field number << 3) | wire type (0 varint, 2 length-delimited). */
const TAG_KEY_HASH = (1 << 3) | 2;
const TAG_PROVIDER = (2 << 3) | 0;
const TAG_MODEL_FAMILIES = (3 << 3) | 2;
const TAG_ORGANIZATION_ID = (4 << 3) | 2;
const TAG_TRIAL = (5 << 3) | 0;
const TAG_STATE = (6 << 3) | 0;
const TAG_STATE_REASON = (7 << 3) | 2;
const TAG_READY_AT = (8 << 3) | 2;
const TAG_RATE_LIMITED_AT = (9 << 3) | 2;
const TAG_LAST_USED = (10 << 3) | 2;
const TAG_LAST_CHECKED = (11 << 3) | 2;
const TAG_PROMPT_COUNT = (12 << 3) | 0;
const TAG_USAGE = (13 << 3) | 2;
const TAG_IN_FLIGHT = (14 << 3) | 0;
const TAG_LEASE_COUNT = (15 << 3) | 0;
/** Field 16 needs a two-byte tag: 130 as a varint. */
const TAG_COOLDOWN_UNTIL = (16 << 3) | 2;
/** Map entries (key = 1, value = 2), Timestamp (seconds = 1, nanos = 2), TokenUsage (1, 2, 3). */
const TAG_1_VARINT = (1 << 3) | 0;
const TAG_2_VARINT = (2 << 3) | 0;
const TAG_3_VARINT = (3 << 3) | 0;
const TAG_1_LEN = (1 << 3) | 2;
const TAG_2_LEN = (2 << 3) | 2;

/** The scratch buffer's usual size; a larger status grows it for its own encoding only. */
const SCRATCH_BYTES = 64 * 1024;
let scratch = Buffer.allocUnsafe(SCRATCH_BYTES);
/** Most bytes of a length's varint in front of a string or an entry. */
const LENGTH_BYTES = 5;

/** The status as a KeyStatus message: toBinary's bytes. */
export function keyStatusBinary(status: KeyStatus): Uint8Array {
  return encode(status, false);
}

/** The status as a length-delimited field's value (its length, then the message), as a repeated or message field carries it. */
export function keyStatusBinaryDelimited(status: KeyStatus): Uint8Array {
  return encode(status, true);
}

function encode(status: KeyStatus, delimited: boolean): Uint8Array {
  if (!writable(status)) return reflective(status, delimited);
  const length = writeStatus(status, 0);
  const prefix = delimited ? varintLength(length) : 0;
  const out = new Uint8Array(prefix + length);
  if (delimited) writeVarint(out, 0, length);
  out.set(scratch.subarray(0, length), prefix);
  if (scratch.length > SCRATCH_BYTES) scratch = Buffer.allocUnsafe(SCRATCH_BYTES);
  return out;
}

/**
 * A google.protobuf.Timestamp of epoch milliseconds as a length-delimited field's value: the bytes
 * of `toBinary(TimestampSchema, timestampFromMs(ms))` after their length. Every WatchKeys message
 * carries one.
 */
export function timestampBinaryDelimited(ms: number): Uint8Array {
  if (!(Number.isSafeInteger(ms) && ms >= 0)) return new BinaryWriter().bytes(toBinary(TimestampSchema, timestampFromMs(ms))).finish();
  const end = writeTimestamp(0, TAG_READY_AT, ms, true);
  // The field's tag (one byte here) is not part of the value; a copy, since scratch is reused.
  return new Uint8Array(scratch.subarray(1, end));
}

function reflective(status: KeyStatus, delimited: boolean): Uint8Array {
  const message = toBinary(KeyStatusSchema, keyStatusToProto(status));
  if (!delimited) return message;
  const prefix = varintLength(message.length);
  const out = new Uint8Array(prefix + message.length);
  writeVarint(out, 0, message.length);
  out.set(message, prefix);
  return out;
}

function count(n: number): boolean {
  return Number.isSafeInteger(n) && n >= 0;
}

/** A time field: 0 or less is "never" (absent), anything else a whole millisecond. */
function time(ms: number): boolean {
  return !(ms > 0) || Number.isSafeInteger(ms);
}

/** Whether every value is one this writer encodes exactly as the reflective path does. */
function writable(status: KeyStatus): boolean {
  if (providerToProto(status.provider) === undefined || keyStateToProto(status.state) === undefined) return false;
  if (!count(status.promptCount) || !count(status.leaseCount)) return false;
  if (!(Number.isInteger(status.inFlight) && status.inFlight >= 0 && status.inFlight <= 0xffffffff)) return false;
  if (!time(status.readyAt) || !time(status.rateLimitedAt) || !time(status.lastUsed) || !time(status.lastChecked) || !time(status.cooldownUntil)) {
    return false;
  }
  for (const family of Object.keys(status.usage)) {
    if (family === "__proto__") return false;
    const usage = status.usage[family]!;
    if (!count(usage.inputTokens) || !count(usage.outputTokens) || !count(usage.prompts)) return false;
  }
  return true;
}

/** Makes room for `bytes` more at `at`, keeping what is written. */
function reserve(at: number, bytes: number): void {
  if (at + bytes <= scratch.length) return;
  const grown = Buffer.allocUnsafe(Math.max(scratch.length * 2, at + bytes));
  scratch.copy(grown, 0, 0, at);
  scratch = grown;
}

function writeStatus(s: KeyStatus, at: number): number {
  at = writeString(at, TAG_KEY_HASH, s.keyHash);
  at = writeVarintField(at, TAG_PROVIDER, providerToProto(s.provider));
  for (const family of s.modelFamilies) at = writeString(at, TAG_MODEL_FAMILIES, family, true);
  at = writeString(at, TAG_ORGANIZATION_ID, s.organizationId);
  if (s.trial) at = writeVarintField(at, TAG_TRIAL, 1);
  at = writeVarintField(at, TAG_STATE, keyStateToProto(s.state));
  at = writeString(at, TAG_STATE_REASON, s.stateReason);
  at = writeTimestamp(at, TAG_READY_AT, s.readyAt);
  at = writeTimestamp(at, TAG_RATE_LIMITED_AT, s.rateLimitedAt);
  at = writeTimestamp(at, TAG_LAST_USED, s.lastUsed);
  at = writeTimestamp(at, TAG_LAST_CHECKED, s.lastChecked);
  at = writeVarintField(at, TAG_PROMPT_COUNT, s.promptCount);
  for (const family of Object.keys(s.usage)) at = writeUsage(at, family, s.usage[family]!);
  at = writeVarintField(at, TAG_IN_FLIGHT, s.inFlight);
  at = writeVarintField(at, TAG_LEASE_COUNT, s.leaseCount);
  return writeTimestamp(at, TAG_COOLDOWN_UNTIL, s.cooldownUntil);
}

/** A varint field, left out when 0 (proto3 implicit presence). */
function writeVarintField(at: number, tag: number, value: number): number {
  if (value === 0) return at;
  reserve(at, 12);
  at = writeVarint(scratch, at, tag);
  return writeVarint(scratch, at, value);
}

/** A string field; a singular one is left out when empty, a repeated one's items never are. */
function writeString(at: number, tag: number, text: string, repeated = false): number {
  if (text.length === 0 && !repeated) return at;
  reserve(at, 1 + LENGTH_BYTES + text.length * 3);
  scratch[at++] = tag;
  return writeText(at, text);
}

/** A string's length then its UTF-8 bytes (lone surrogates as U+FFFD, as TextEncoder and Buffer write them). */
function writeText(at: number, text: string): number {
  let ascii = true;
  for (let i = 0; i < text.length; i++) {
    if (text.charCodeAt(i) >= 0x80) {
      ascii = false;
      break;
    }
  }
  if (ascii) {
    at = writeVarint(scratch, at, text.length);
    for (let i = 0; i < text.length; i++) scratch[at++] = text.charCodeAt(i);
    return at;
  }
  at = writeVarint(scratch, at, Buffer.byteLength(text, "utf8"));
  return at + scratch.write(text, at, "utf8");
}

/** A google.protobuf.Timestamp field from epoch milliseconds; 0 (never) is absent unless `always`. */
function writeTimestamp(at: number, tag: number, ms: number, always = false): number {
  if (!(ms > 0) && !always) return at;
  const seconds = Math.floor(ms / 1000);
  const nanos = (ms - seconds * 1000) * 1_000_000;
  const length = (seconds > 0 ? 1 + varintLength(seconds) : 0) + (nanos > 0 ? 1 + varintLength(nanos) : 0);
  reserve(at, 2 + 1 + length);
  at = writeVarint(scratch, at, tag);
  scratch[at++] = length;
  if (seconds > 0) {
    scratch[at++] = TAG_1_VARINT;
    at = writeVarint(scratch, at, seconds);
  }
  if (nanos > 0) {
    scratch[at++] = TAG_2_VARINT;
    at = writeVarint(scratch, at, nanos);
  }
  return at;
}

/** One entry of the `usage` map: the family as field 1 (always written), its TokenUsage as field 2. */
function writeUsage(at: number, family: string, usage: KeyStatus["usage"][string]): number {
  const value =
    (usage.inputTokens > 0 ? 1 + varintLength(usage.inputTokens) : 0) +
    (usage.outputTokens > 0 ? 1 + varintLength(usage.outputTokens) : 0) +
    (usage.prompts > 0 ? 1 + varintLength(usage.prompts) : 0);
  const keyBytes = Buffer.byteLength(family, "utf8");
  const entry = 1 + varintLength(keyBytes) + keyBytes + 1 + varintLength(value) + value;
  reserve(at, 1 + LENGTH_BYTES + entry);
  scratch[at++] = TAG_USAGE;
  at = writeVarint(scratch, at, entry);
  scratch[at++] = TAG_1_LEN;
  at = writeText(at, family);
  scratch[at++] = TAG_2_LEN;
  at = writeVarint(scratch, at, value);
  if (usage.inputTokens > 0) at = writeVarint(scratch, writeVarint(scratch, at, TAG_1_VARINT), usage.inputTokens);
  if (usage.outputTokens > 0) at = writeVarint(scratch, writeVarint(scratch, at, TAG_2_VARINT), usage.outputTokens);
  if (usage.prompts > 0) at = writeVarint(scratch, writeVarint(scratch, at, TAG_3_VARINT), usage.prompts);
  return at;
}
