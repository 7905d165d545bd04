/**
 * keypool.v1.KeyPoolService: what proxies and dashboards call. Thin on purpose: each method maps
 * the request to one pool call and the result back. Validation and errors live in the pool
 * (PoolError); errors.ts turns them into status codes.
 */
import { Code, ConnectError, type HandlerContext, type ServiceImpl } from "@connectrpc/connect";
import { KeyPoolService } from "../../gen/ts/keypool/v1/keypool_pb";
import {
  durationFromProto,
  durationToProto,
  keyStatusToProto,
  leaseToProto,
  providerFromProto,
  timestampOrUnset,
  uint64ToNumber,
} from "./convert";
import { listKeysPage } from "./list-keys-page";
import { noDurability, type Durability, type PoolApi } from "../domain/pool-api";

export type WatchKeysImpl = ServiceImpl<typeof KeyPoolService>["watchKeys"];

export interface KeyPoolServiceDeps {
  pool: PoolApi;
  durability?: Durability;
  /** The WatchKeys implementation (the watch hub); absent: UNIMPLEMENTED. */
  watchKeys?: WatchKeysImpl;
}

/** WatchKeys of a server assembled without a watch hub: UNIMPLEMENTED. */
export const watchKeysUnavailable: WatchKeysImpl = async function* () {
  throw new ConnectError("WatchKeys is not available yet", Code.Unimplemented);
};

/** How long Lease may wait: max_wait, but never past the call's deadline. */
export function effectiveMaxWaitMs(maxWaitMs: number, timeoutMs: number | undefined): number {
  if (timeoutMs === undefined) return maxWaitMs;
  return Math.max(0, Math.min(maxWaitMs, timeoutMs));
}

export function createKeyPoolService(deps: KeyPoolServiceDeps): ServiceImpl<typeof KeyPoolService> {
  const { pool } = deps;
  const durability = deps.durability ?? noDurability;
  return {
    async lease(req, ctx: HandlerContext) {
      const provider = providerFromProto(req.provider);
      const maxWaitMs = effectiveMaxWaitMs(durationFromProto(req.maxWait, "max_wait"), ctx.timeoutMs());
      if (maxWaitMs <= 0) return leaseToProto(await pool.lease({ model: req.model, provider }));
      try {
        return leaseToProto(
          await pool.leaseWhenReady({ model: req.model, provider, maxWaitMs, signal: ctx.signal }),
        );
      } catch (err) {
        // Ended by the deadline, the client or shutdown: report that, not the pool's view of it.
        if (ctx.signal.aborted) throw ctx.signal.reason;
        throw err;
      }
    },

    async reportRateLimit(req) {
      const { readyAt } = await pool.reportRateLimit({
        keyHash: req.keyHash,
        statusCode: req.statusCode,
        headers: req.headers,
        leaseId: req.leaseId || undefined,
        errorType: req.errorType || undefined,
        errorCode: req.errorCode || undefined,
        model: req.model || undefined,
      });
      // A revocation or a cooldown that was acknowledged must survive a crash like usage does.
      await durability.flush();
      return { readyAt: timestampOrUnset(readyAt) };
    },

    async incrementUsage(req) {
      await pool.incrementUsage({
        keyHash: req.keyHash,
        model: req.model,
        inputTokens: uint64ToNumber(req.inputTokens),
        outputTokens: uint64ToNumber(req.outputTokens),
        leaseId: req.leaseId || undefined,
      });
      await durability.flush();
      return {};
    },

    watchKeys: deps.watchKeys ?? watchKeysUnavailable,

    async getLockoutPeriod(req) {
      const { lockoutMs, noActiveKeys } = await pool.lockout({
        model: req.model,
        provider: providerFromProto(req.provider),
      });
      return { lockout: durationToProto(lockoutMs), noActiveKeys };
    },

    async listKeys(req) {
      const filter = {
        provider: providerFromProto(req.provider),
        modelFamilies: req.modelFamilies.length > 0 ? req.modelFamilies : undefined,
      };
      return listKeysPage(pool, filter, { pageSize: req.pageSize, pageToken: req.pageToken });
    },
  };
}
