/**
 * keypool.v1.KeyPoolService/WatchKeys: a server stream over one watch-hub subscription. The
 * generator yields one message per pull, and connect-node pulls only when the previous message
 * was written (it waits for 'drain'), so a client that stops reading is held back by HTTP/2 flow
 * control and the hub keeps at most one pending change per key for it.
 */
import { create, toBinary } from "@bufbuild/protobuf";
import { BinaryWriter, WireType } from "@bufbuild/protobuf/wire";
import { timestampFromMs, TimestampSchema } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError, type HandlerContext } from "@connectrpc/connect";
import {
  KeyStatusSchema,
  WatchKeysResponseSchema,
  type KeyStatus as ProtoKeyStatus,
  type WatchKeysRequest,
  type WatchKeysResponse,
} from "../../gen/ts/keypool/v1/keypool_pb";
import type { KeyStatus } from "../domain/types";
import type { WatchHub } from "../watch/watch-hub";
import type { WatchEvent } from "../watch/watch-subscription";
import { keyStatusToProto, providerFromProto } from "./convert";
import type { WatchKeysImpl } from "./key-pool-service";

/** Longest family name a filter may name; longer ones cannot match any key. */
const MAX_FAMILY_BYTES = 256;
/** Most families one filter may name. */
const MAX_FAMILIES = 256;

/**
 * One change reaches every matching watch as the same status object, so it is converted once,
 * not once per watch. The pool never mutates a status it has published.
 */
const converted = new WeakMap<KeyStatus, ProtoKeyStatus>();
function convert(status: KeyStatus): ProtoKeyStatus {
  let proto = converted.get(status);
  if (!proto) converted.set(status, (proto = keyStatusToProto(status)));
  return proto;
}

export function watchEventToProto(event: WatchEvent): WatchKeysResponse {
  const base = { sequence: BigInt(event.sequence), time: timestampFromMs(event.time) };
  switch (event.type) {
    case "snapshot":
      return create(WatchKeysResponseSchema, {
        ...base,
        event: { case: "snapshot", value: { keys: event.keys.map(convert), more: event.more } },
      });
    case "updated":
      return create(WatchKeysResponseSchema, {
        ...base,
        event: { case: "updated", value: convert(event.status) },
      });
    case "removed":
      return create(WatchKeysResponseSchema, { ...base, event: { case: "removedKeyHash", value: event.keyHash } });
    case "changes":
      return create(WatchKeysResponseSchema, {
        ...base,
        event: { case: "changes", value: { updated: event.updated.map(convert), removedKeyHashes: event.removed } },
      });
    case "heartbeat":
      return create(WatchKeysResponseSchema, { ...base, event: { case: "heartbeat", value: {} } });
  }
}

/**
 * The binary codecs' fast path. A status reaches many watches, in messages of their own (their own
 * sequence and time): encoding a whole WatchKeysResponse per watch encoded the same KeyStatus a
 * thousand times. Here each status is encoded once (the pool publishes a new status object per
 * change and never mutates one it published), each snapshot slice once for every watch that takes
 * it (the hub shares the slice's key array), and the time once per millisecond; each watch's
 * message carries the encoded fields as protobuf-es unknown fields, which toBinary writes as they
 * are: the bytes on the wire are those of the same message encoded field by field (decoders accept
 * fields in any order). Removals and heartbeats keep the ordinary path. JSON has no unknown
 * fields: JSON streams always take the ordinary path.
 */
const encodedStatuses = new WeakMap<KeyStatus, Uint8Array>();
function encodedStatus(status: KeyStatus): Uint8Array {
  let data = encodedStatuses.get(status);
  if (!data) {
    // A length-delimited field's value: the length, then the message.
    data = new BinaryWriter().bytes(toBinary(KeyStatusSchema, convert(status))).finish();
    encodedStatuses.set(status, data);
  }
  return data;
}

/**
 * A status's size as a repeated message field (tag, length, message): the hub's measure for the
 * byte budgets of slices and batches. The encoding is kept for when the status is sent.
 */
export function encodedStatusBytes(status: KeyStatus): number {
  return encodedStatus(status).length + 1;
}

let lastTimeMs = NaN;
let lastTime = new Uint8Array(0);
function encodedTime(ms: number): Uint8Array {
  if (ms !== lastTimeMs) {
    lastTime = new BinaryWriter().bytes(toBinary(TimestampSchema, timestampFromMs(ms))).finish();
    lastTimeMs = ms;
  }
  return lastTime;
}

function varint(value: number): Uint8Array {
  const out: number[] = [];
  while (value > 0x7f) {
    out.push((value % 0x80) | 0x80);
    value = Math.floor(value / 0x80);
  }
  out.push(value);
  return Uint8Array.from(out);
}

/** Tags of KeySnapshot / KeyChanges fields: (field number << 3) | wire type. */
const TAG_FIELD_1_LEN = (1 << 3) | 2;
const TAG_FIELD_2_LEN = (2 << 3) | 2;
const TAG_FIELD_2_VARINT = 2 << 3;
const utf8 = new TextEncoder();

/** A length-delimited message value made of already-encoded fields. */
function lengthDelimited(parts: Uint8Array[]): Uint8Array {
  let length = 0;
  for (const part of parts) length += part.length;
  const prefix = varint(length);
  const out = new Uint8Array(prefix.length + length);
  out.set(prefix, 0);
  let at = prefix.length;
  for (const part of parts) {
    out.set(part, at);
    at += part.length;
  }
  return out;
}

function statusFields(statuses: readonly KeyStatus[], parts: Uint8Array[]): void {
  const tag = Uint8Array.of(TAG_FIELD_1_LEN);
  for (const status of statuses) parts.push(tag, encodedStatus(status));
}

const encodedSlices = new WeakMap<readonly KeyStatus[], Uint8Array>();
function encodedSlice(keys: readonly KeyStatus[], more: boolean): Uint8Array {
  let data = encodedSlices.get(keys);
  if (!data) {
    const parts: Uint8Array[] = [];
    statusFields(keys, parts);
    if (more) parts.push(Uint8Array.of(TAG_FIELD_2_VARINT, 1));
    data = lengthDelimited(parts);
    encodedSlices.set(keys, data);
  }
  return data;
}

function encodedChanges(updated: readonly KeyStatus[], removed: readonly string[]): Uint8Array {
  const parts: Uint8Array[] = [];
  statusFields(updated, parts);
  const tag = Uint8Array.of(TAG_FIELD_2_LEN);
  for (const keyHash of removed) {
    const bytes = utf8.encode(keyHash);
    parts.push(tag, varint(bytes.length), bytes);
  }
  return lengthDelimited(parts);
}

/** The message for one event, for a binary codec: the same bytes as watchEventToProto's. */
export function watchEventToBinaryProto(event: WatchEvent): WatchKeysResponse {
  let field: number;
  let data: Uint8Array;
  switch (event.type) {
    case "updated":
      field = 4;
      data = encodedStatus(event.status);
      break;
    case "snapshot":
      field = 3;
      data = encodedSlice(event.keys, event.more);
      break;
    case "changes":
      field = 7;
      data = encodedChanges(event.updated, event.removed);
      break;
    default:
      return watchEventToProto(event);
  }
  const message = create(WatchKeysResponseSchema);
  message.$unknown = [
    { no: 1, wireType: WireType.Varint, data: varint(event.sequence) },
    { no: 2, wireType: WireType.LengthDelimited, data: encodedTime(event.time) },
    { no: field, wireType: WireType.LengthDelimited, data },
  ];
  return message;
}

/** Whether the call's messages are protobuf binary (gRPC, gRPC-Web, Connect with +proto), not JSON. */
function binaryCodec(ctx: HandlerContext): boolean {
  const contentType = ctx.requestHeader.get("content-type") ?? "";
  return !/json/i.test(contentType);
}

function filterFromRequest(req: WatchKeysRequest) {
  if (req.modelFamilies.length > MAX_FAMILIES) {
    throw new ConnectError(`model_families may name at most ${MAX_FAMILIES} families, got ${req.modelFamilies.length}`, Code.InvalidArgument);
  }
  for (const family of req.modelFamilies) {
    if (Buffer.byteLength(family) > MAX_FAMILY_BYTES) {
      throw new ConnectError(`a model family name is at most ${MAX_FAMILY_BYTES} bytes`, Code.InvalidArgument);
    }
  }
  return {
    provider: providerFromProto(req.provider),
    modelFamilies: req.modelFamilies.filter((family) => family !== ""),
  };
}

/** The WatchKeys implementation to pass to createKeyPoolService({ watchKeys }). */
export function createWatchKeys(hub: WatchHub): WatchKeysImpl {
  return async function* watchKeys(req: WatchKeysRequest, ctx: HandlerContext) {
    // The subscription listens to ctx.signal: when the client goes away (or the server shuts
    // down) a pending next() finishes at once and the hub forgets the watch.
    const subscription = hub.subscribe(filterFromRequest(req), ctx.signal, { batch: req.batch });
    const toProto = binaryCodec(ctx) ? watchEventToBinaryProto : watchEventToProto;
    try {
      for (;;) {
        const result = await subscription.next();
        if (result.done) break;
        yield toProto(result.value);
      }
    } finally {
      subscription.close();
    }
    // The stream ended because the call was aborted: say why (shutdown → UNAVAILABLE).
    if (ctx.signal.aborted) throw abortReason(ctx.signal.reason);
  };
}

function abortReason(reason: unknown): ConnectError {
  if (reason instanceof ConnectError) return reason;
  return new ConnectError("the watch was canceled", Code.Canceled);
}
