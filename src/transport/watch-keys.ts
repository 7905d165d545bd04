/**
 * keypool.v1.KeyPoolService/WatchKeys: a server stream over one watch-hub subscription. The
 * stream makes one message per pull, and both ports pull only when node has handed the previous
 * message to the connection (src/server/node-handler.ts, src/server/grpc-js-adapter.ts), so a
 * client that stops reading is held back by HTTP/2 flow control and the hub keeps at most one
 * pending change per key for it.
 */
import { create } from "@bufbuild/protobuf";
import { WireType } from "@bufbuild/protobuf/wire";
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError, type HandlerContext } from "@connectrpc/connect";
import {
  WatchKeysResponseSchema,
  type KeyStatus as ProtoKeyStatus,
  type WatchKeysRequest,
  type WatchKeysResponse,
} from "../../gen/ts/keypool/v1/keypool_pb";
import type { KeyStatus } from "../domain/types";
import type { WatchHub } from "../watch/watch-hub";
import type { WatchEvent, WatchSubscription } from "../watch/watch-subscription";
import { keyStatusToProto, providerFromProto } from "./convert";
import { keyStatusBinaryDelimited, timestampBinaryDelimited } from "./key-status-binary";
import { varintLength, writeVarint } from "./varint";
import type { WatchKeysImpl } from "./key-pool-service";
import { EncodedOnDemand } from "./pre-encoded";
import { PULL, type PullNow } from "../watch/pull-now";

/** Longest family name a filter may name; longer ones cannot match any key. */
const MAX_FAMILY_BYTES = 256;
/** Most families one filter may name. */
const MAX_FAMILIES = 256;

/**
 * One change reaches every matching watch as the same status object, so it is converted once,
 * not once per watch. Nobody changes a status once it is read from the pool (src/watch/key-slots.ts).
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
        event: { case: "changes", value: { updated: event.updated.map(convert), removedKeyHashes: [...event.removed] } },
      });
    case "heartbeat":
      return create(WatchKeysResponseSchema, { ...base, event: { case: "heartbeat", value: {} } });
  }
}

/**
 * The binary codecs' fast path. A status reaches many watches, in messages of their own (their own
 * sequence and time): encoding a whole WatchKeysResponse per watch encoded the same KeyStatus a
 * thousand times. Here each status is encoded once (the hub hands the watches that send one
 * change the same status object, a copy that nobody changes afterwards), each snapshot slice once for every watch that takes
 * it (the hub shares the slice's key array), each `changes` body once for the watches that take
 * the same statuses in the same order (watches with one filter, woken together, do), and the
 * time once per millisecond. A watch's message is then its sequence and time (a few bytes of its
 * own), the event's tag and the shared body, written one after the other (decoders accept fields
 * in any order, and these are in field order anyway), never copied into one buffer per watch: a
 * thousand watches whose clients stopped reading each hold one message, and the body they hold
 * is shared. The message handed to the transport gives those parts two ways, each made when
 * read (EncodedWatchKeysResponse): as its encoding (src/transport/pre-encoded.ts, which the native
 * port and the main port's gRPC streams write as they are) and as two protobuf-es unknown fields,
 * which toBinary (connect-node) writes. Either way the bytes on the wire are those of the message
 * encoded field by field (a unit test compares them).
 * Removals and heartbeats keep the ordinary path. JSON has no unknown fields: JSON streams always
 * take the ordinary path.
 */
const encodedStatuses = new WeakMap<KeyStatus, Uint8Array>();
function encodedStatus(status: KeyStatus): Uint8Array {
  let data = encodedStatuses.get(status);
  if (!data) {
    // A length-delimited field's value: the length, then the message.
    data = keyStatusBinaryDelimited(status);
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
let lastTime: Uint8Array = new Uint8Array(0);
function encodedTime(ms: number): Uint8Array {
  if (ms !== lastTimeMs) {
    lastTime = timestampBinaryDelimited(ms);
    lastTimeMs = ms;
  }
  return lastTime;
}

/** Tags: (field number << 3) | wire type. */
const TAG_SEQUENCE = (1 << 3) | WireType.Varint;
const TAG_TIME = (2 << 3) | WireType.LengthDelimited;
const TAG_SNAPSHOT = (3 << 3) | WireType.LengthDelimited;
const TAG_UPDATED = (4 << 3) | WireType.LengthDelimited;
const TAG_CHANGES = (7 << 3) | WireType.LengthDelimited;
/** KeySnapshot.keys and KeyChanges.updated (field 1), KeyChanges.removed_key_hashes (field 2), KeySnapshot.more (field 2). */
const TAG_FIELD_1_LEN = (1 << 3) | WireType.LengthDelimited;
const TAG_FIELD_2_LEN = (2 << 3) | WireType.LengthDelimited;
const TAG_FIELD_2_VARINT = (2 << 3) | WireType.Varint;
const utf8 = new TextEncoder();

/**
 * A KeySnapshot / KeyChanges as a length-delimited field value (length, then the fields): the
 * statuses as field 1, then the removed key hashes as field 2, then `more` (true) as field 2.
 */
function encodedBody(statuses: readonly KeyStatus[], removed: readonly string[], more: boolean): Uint8Array {
  let length = 0;
  for (const status of statuses) length += 1 + encodedStatus(status).length;
  const removedBytes = removed.map((keyHash) => utf8.encode(keyHash));
  for (const bytes of removedBytes) length += 1 + varintLength(bytes.length) + bytes.length;
  if (more) length += 2;
  const out = new Uint8Array(varintLength(length) + length);
  let at = writeVarint(out, 0, length);
  for (const status of statuses) {
    out[at++] = TAG_FIELD_1_LEN;
    const data = encodedStatus(status);
    out.set(data, at);
    at += data.length;
  }
  for (const bytes of removedBytes) {
    out[at++] = TAG_FIELD_2_LEN;
    at = writeVarint(out, at, bytes.length);
    out.set(bytes, at);
    at += bytes.length;
  }
  if (more) {
    out[at++] = TAG_FIELD_2_VARINT;
    out[at++] = 1;
  }
  return out;
}

const encodedSlices = new WeakMap<readonly KeyStatus[], Uint8Array>();
function encodedSlice(keys: readonly KeyStatus[], more: boolean): Uint8Array {
  let data = encodedSlices.get(keys);
  if (!data) encodedSlices.set(keys, (data = encodedBody(keys, [], more)));
  return data;
}

/** Bodies of `changes` messages made lately, newest last: a thousand watches woken together take the same one. */
const recentChanges: { updated: readonly KeyStatus[]; removed: readonly string[]; body: Uint8Array }[] = [];
/** How many: one per filter woken in the same turn is enough; a miss costs one encoding. */
const RECENT_CHANGES = 8;

function sameItems<T>(a: readonly T[], b: readonly T[]): boolean {
  // The watches of one shared window send the very same list (src/watch/watch-subscription.ts, SharedBatch).
  if (a === b) return true;
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

function encodedChanges(updated: readonly KeyStatus[], removed: readonly string[]): Uint8Array {
  for (let i = recentChanges.length - 1; i >= 0; i--) {
    const recent = recentChanges[i]!;
    if (sameItems(recent.updated, updated) && sameItems(recent.removed, removed)) return recent.body;
  }
  const body = encodedBody(updated, removed, false);
  if (recentChanges.length === RECENT_CHANGES) recentChanges.shift();
  recentChanges.push({ updated, removed, body });
  return body;
}

/** The event fields' tags, each as the one byte that precedes the event's shared body. */
const TAG_BYTES = new Map([TAG_SNAPSHOT, TAG_UPDATED, TAG_CHANGES].map((tag) => [tag, Uint8Array.of(tag)]));

/** The zero `event` oneof, shared: nobody changes a message's oneof once it is sent. */
const NO_EVENT = Object.freeze({ case: undefined, value: undefined });

/**
 * A whole WatchKeysResponse as a watch sends it: its head (sequence and time, the watch's own
 * bytes), the event's tag, then `body`, the event's length-delimited value, shared and never
 * copied here. It is a message as protobuf-es reads one (its type name, every field at its zero
 * value) whose head and body are unknown fields, made when read: toBinary (connect-node, for
 * gRPC-Web and Connect) writes an unknown field as its tag, then its bytes: the sequence's tag,
 * then the rest of the head; the event's tag, then its body. Its encoding in parts
 * (src/transport/pre-encoded.ts) is made when a transport asks: head, tag, body.
 */
class EncodedWatchKeysResponse extends EncodedOnDemand {
  readonly $typeName = WatchKeysResponseSchema.typeName;
  readonly sequence = 0n;
  readonly event = NO_EVENT;

  constructor(
    private readonly head: Uint8Array,
    private readonly tag: number,
    private readonly body: Uint8Array,
  ) {
    super();
  }

  get $unknown(): { no: number; wireType: WireType; data: Uint8Array }[] {
    return [
      { no: 1, wireType: WireType.Varint, data: this.head.subarray(1) },
      { no: this.tag >>> 3, wireType: WireType.LengthDelimited, data: this.body },
    ];
  }

  protected encodingParts(): readonly Uint8Array[] {
    return [this.head, TAG_BYTES.get(this.tag)!, this.body];
  }
}

/** A message's head: the sequence's tag and value, the time's tag and value. */
function encodedHead(sequence: number, timeMs: number): Uint8Array {
  const time = encodedTime(timeMs);
  const head = new Uint8Array(1 + varintLength(sequence) + 1 + time.length);
  head[0] = TAG_SEQUENCE;
  let at = writeVarint(head, 1, sequence);
  head[at++] = TAG_TIME;
  head.set(time, at);
  return head;
}

/** The message for one event, for a binary codec: the same bytes as watchEventToProto's. */
export function watchEventToBinaryProto(event: WatchEvent): WatchKeysResponse {
  let tag: number;
  let body: Uint8Array;
  switch (event.type) {
    case "updated":
      tag = TAG_UPDATED;
      body = encodedStatus(event.status);
      break;
    case "snapshot":
      tag = TAG_SNAPSHOT;
      body = encodedSlice(event.keys, event.more);
      break;
    case "changes":
      tag = TAG_CHANGES;
      body = encodedChanges(event.updated, event.removed);
      break;
    default:
      return watchEventToProto(event);
  }
  return new EncodedWatchKeysResponse(encodedHead(event.sequence, event.time), tag, body) as unknown as WatchKeysResponse;
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
  return (req: WatchKeysRequest, ctx: HandlerContext) => ({
    [Symbol.asyncIterator]: () => new WatchStream(hub, req, ctx),
  });
}

/**
 * One WatchKeys stream's messages: one per pull of the watch-hub subscription, which it opens at
 * the first pull (as an async generator's body would start). An iterator, not an async generator:
 * a generator's await and yield cost several promises per message, and a fan-out sends thousands
 * of messages a second; here a message costs one.
 */
class WatchStream implements AsyncIterator<WatchKeysResponse>, PullNow<WatchKeysResponse> {
  private subscription: WatchSubscription | null = null;
  private finished = false;
  private readonly toProto: (event: WatchEvent) => WatchKeysResponse;

  constructor(
    private readonly hub: WatchHub,
    private readonly req: WatchKeysRequest,
    private readonly ctx: HandlerContext,
  ) {
    this.toProto = binaryCodec(ctx) ? watchEventToBinaryProto : watchEventToProto;
  }

  next(): Promise<IteratorResult<WatchKeysResponse>> {
    if (this.finished) return Promise.resolve({ done: true, value: undefined });
    let subscription: WatchSubscription;
    try {
      subscription = this.subscribed();
    } catch (err) {
      return Promise.reject(err);
    }
    return subscription.next().then(this.passed, this.failed);
  }

  /** next() without a promise (src/watch/pull-now.ts): the subscription's message, converted. */
  [PULL](ready: () => void): IteratorResult<WatchKeysResponse> | null {
    if (this.finished) return { done: true, value: undefined };
    const subscription = this.subscribed();
    let result: IteratorResult<WatchEvent> | null;
    try {
      result = subscription[PULL](ready);
    } catch (err) {
      return this.failed(err);
    }
    return result === null ? null : this.passed(result);
  }

  /** The subscription, opened at the first pull (as an async generator's body would start). */
  private subscribed(): WatchSubscription {
    if (this.subscription) return this.subscription;
    try {
      // The subscription listens to ctx.signal: when the client goes away (or the server shuts
      // down) a pending pull finishes at once and the hub forgets the watch.
      return (this.subscription = this.hub.subscribe(filterFromRequest(this.req), this.ctx.signal, { batch: this.req.batch }));
    } catch (err) {
      this.finished = true;
      throw err;
    }
  }

  return(): Promise<IteratorResult<WatchKeysResponse>> {
    this.finish();
    return Promise.resolve({ done: true, value: undefined });
  }

  private readonly passed = (result: IteratorResult<WatchEvent>): IteratorResult<WatchKeysResponse> => {
    if (!result.done) return { done: false, value: this.toProto(result.value) };
    this.finish();
    // The stream ended because the call was aborted: say why (shutdown → UNAVAILABLE).
    if (this.ctx.signal.aborted) throw abortReason(this.ctx.signal.reason);
    return { done: true, value: undefined };
  };

  private readonly failed = (err: unknown): never => {
    this.finish();
    throw err;
  };

  private finish(): void {
    this.finished = true;
    this.subscription?.close();
  }
}

function abortReason(reason: unknown): ConnectError {
  if (reason instanceof ConnectError) return reason;
  return new ConnectError("the watch was canceled", Code.Canceled);
}
