/**
 * keypool.v1.KeyPoolService/WatchKeys: a server stream over one watch-hub subscription. The
 * generator yields one message per pull, and connect-node pulls only when the previous message
 * was written (it waits for 'drain'), so a client that stops reading is held back by HTTP/2 flow
 * control and the hub keeps at most one pending change per key for it.
 */
import { create } from "@bufbuild/protobuf";
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
    try {
      for (;;) {
        const result = await subscription.next();
        if (result.done) break;
        yield watchEventToProto(result.value);
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
