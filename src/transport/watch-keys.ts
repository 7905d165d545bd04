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
        event: { case: "snapshot", value: { keys: event.keys.map(convert) } },
      });
    case "updated":
      return create(WatchKeysResponseSchema, {
        ...base,
        event: { case: "updated", value: convert(event.status) },
      });
    case "removed":
      return create(WatchKeysResponseSchema, { ...base, event: { case: "removedKeyHash", value: event.keyHash } });
    case "heartbeat":
      return create(WatchKeysResponseSchema, { ...base, event: { case: "heartbeat", value: {} } });
  }
}

/**
 * The binary codecs' fast path. One change reaches every matching watch, and each of them sends
 * it in a message of its own (its own sequence and time): encoding a whole WatchKeysResponse per
 * watch encoded the same KeyStatus a thousand times. Here the status is encoded once per change
 * (and the time once per millisecond), and each watch's message carries the encoded fields as
 * protobuf-es unknown fields, which toBinary writes as they are: the bytes on the wire are those
 * of the same message encoded field by field (tags 1, 2 and 4; decoders accept fields in any
 * order). Only for `updated`, the message of every change; the others keep the ordinary path.
 * JSON has no unknown fields: JSON streams always take the ordinary path.
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

/** The message for one event, for a binary codec: the same bytes as watchEventToProto's. */
export function watchEventToBinaryProto(event: WatchEvent): WatchKeysResponse {
  if (event.type !== "updated") return watchEventToProto(event);
  const message = create(WatchKeysResponseSchema);
  message.$unknown = [
    { no: 1, wireType: WireType.Varint, data: varint(event.sequence) },
    { no: 2, wireType: WireType.LengthDelimited, data: encodedTime(event.time) },
    { no: 4, wireType: WireType.LengthDelimited, data: encodedStatus(event.status) },
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
    const subscription = hub.subscribe(filterFromRequest(req), ctx.signal);
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
