/**
 * The one call the server makes at start when KEYPOOL_STATE is a redis:// URL: connects (with
 * the checks of redis-connection.ts), opens the pool kept there (merging the configured keys),
 * and returns what the server needs around it: the pool, the read model that the watch hub, the
 * checker and the metrics census follow, and the durability hook through which health follows
 * the connection. The counterpart of src/storage/durable-state.ts for the embedded file.
 */
import type { Clock } from "../domain/clock";
import type { FamilyTable } from "../domain/model-families";
import type { Durability } from "../domain/pool-api";
import type { KeySpec } from "../domain/types";
import { openRedisConnection, type RedisConnection, type RedisLogger, type RedisSettings } from "./redis-connection";
import { RedisPool, type RedisPoolTunables } from "./redis-pool";

/**
 * The bound on each command while the pool opens: merging the configured keys and loading the
 * read model run scripts of a thousand keys each, which on a busy machine take longer than a
 * call's KEYPOOL_REDIS_TIMEOUT. Calls are served only after the open.
 */
export const OPEN_COMMAND_TIMEOUT_MS = 30_000;

export interface RedisStateOptions {
  redis: RedisSettings;
  /** KEYPOOL_REDIS_PREFIX. */
  prefix: string;
  clock: Clock;
  tunables: RedisPoolTunables;
  families: FamilyTable;
  allowedFamilies: ReadonlySet<string> | null;
  configured: readonly KeySpec[];
  logger: RedisLogger;
  /** Tests only: scripts take their time from `clock` (RedisPoolOptions.scriptTimeFromClock). */
  scriptTimeFromClock?: boolean;
}

export interface RedisState {
  readonly pool: RedisPool;
  readonly connection: RedisConnection;
  /** Calls are acknowledged once Redis ran their script; health follows the connection. */
  readonly durability: Durability;
  /** KEYPOOL_STATE as logs show it (no password). */
  readonly shown: string;
  close(): Promise<void>;
}

export async function openRedisState(options: RedisStateOptions): Promise<RedisState> {
  const connection = await openRedisConnection(options.redis, { logger: options.logger });
  let pool: RedisPool;
  const { client } = connection;
  // ioredis reads the option as each command is sent: raised for the open, restored for calls.
  client.options.commandTimeout = Math.max(OPEN_COMMAND_TIMEOUT_MS, options.redis.timeoutMs);
  try {
    pool = await RedisPool.open({
      redis: connection.client,
      prefix: options.prefix,
      clock: options.clock,
      tunables: options.tunables,
      families: options.families,
      allowedFamilies: options.allowedFamilies,
      configured: options.configured,
      logger: options.logger,
      scriptTimeFromClock: options.scriptTimeFromClock,
    });
  } catch (err) {
    await connection.close();
    throw err;
  } finally {
    client.options.commandTimeout = options.redis.timeoutMs;
  }
  return {
    pool,
    connection,
    durability: {
      // Redis answered the script: with appendfsync always it is on disk (README, "Durability").
      flush: () => Promise.resolve(),
      watchSaving: (listener) => connection.watchAvailable(listener),
      savedTo: "Redis",
    },
    shown: options.redis.target.shown,
    async close() {
      await pool.close();
      await connection.close();
    },
  };
}
