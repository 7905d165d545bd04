/**
 * keypool.v1.KeyAdminService: what operators call to change the pool at run time. Each change is
 * made durable (durability.flush) before it is acknowledged.
 */
import type { ServiceImpl } from "@connectrpc/connect";
import { KeyAdminService } from "../../gen/ts/keypool/v1/keypool_pb";
import { disableStateFromProto, keyStatusToProto, requiredProviderFromProto } from "./convert";
import { noDurability, type Durability, type PoolApi } from "../domain/pool-api";

export interface KeyAdminServiceDeps {
  pool: PoolApi;
  durability?: Durability;
}

export function createKeyAdminService(deps: KeyAdminServiceDeps): ServiceImpl<typeof KeyAdminService> {
  const { pool } = deps;
  const durability = deps.durability ?? noDurability;
  return {
    async addKeys(req) {
      const provider = requiredProviderFromProto(req.provider);
      const result = await pool.addKeys(
        req.keys.map((spec) => ({
          provider,
          key: spec.key,
          modelFamilies: spec.modelFamilies,
          trial: spec.trial,
          organizationId: spec.organizationId || undefined,
        })),
      );
      await durability.flush();
      return { keyHashes: result.keyHashes, added: result.added, duplicates: result.duplicates };
    },

    async removeKey(req) {
      await pool.removeKey(req.keyHash);
      await durability.flush();
      return {};
    },

    async disableKey(req) {
      const status = await pool.disableKey(req.keyHash, disableStateFromProto(req.state), req.reason || undefined);
      await durability.flush();
      return { key: keyStatusToProto(status) };
    },

    async enableKey(req) {
      const status = await pool.enableKey(req.keyHash);
      await durability.flush();
      return { key: keyStatusToProto(status) };
    },

    async recheckKeys(req) {
      const scheduled = await pool.markForCheck(req.keyHashes);
      await durability.flush();
      return { scheduled };
    },
  };
}
