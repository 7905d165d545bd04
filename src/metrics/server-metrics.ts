/**
 * Assembles metrics for one pool: the census that follows its change feed, the registry, and
 * the instrumented PoolApi that every server stack is given. main.ts and the tests build it the
 * same way.
 */
import type { Clock } from "../domain/clock";
import type { ProviderId } from "../domain/types";
import type { PoolApi } from "../domain/pool-api";
import { KeyCensus, type CensusPool } from "./key-census";
import { instrumentPool } from "./instrumented-pool";
import { KeypoolMetrics } from "./metrics";

export interface MeteredPool {
  resolveModel(model: string, provider?: ProviderId): { provider: ProviderId; family: string };
}

export interface ServerMetrics {
  metrics: KeypoolMetrics;
  census: KeyCensus;
  /** The pool to serve: every call is counted. */
  pool: PoolApi;
  close(): void;
}

/**
 * The census follows the pool's change feed and first listing; a pool whose listing may wait (one
 * kept in Redis) names its read model as `census` instead.
 */
type CensusSource = { pool: MeteredPool & PoolApi & CensusPool; census?: undefined } | { pool: MeteredPool & PoolApi; census: CensusPool };

export function createServerMetrics(options: CensusSource & {
  clock: Clock;
  /** Open WatchKeys streams. */
  watchers?: () => number;
  /** Keys not yet committed to the state file. */
  storeQueue?: () => number;
  /** Node's process metrics (CPU, memory, event loop); default true. */
  processMetrics?: boolean;
}): ServerMetrics {
  const { pool, clock } = options;
  const metrics = new KeypoolMetrics({ processMetrics: options.processMetrics });
  const census = new KeyCensus(options.census ?? (pool as MeteredPool & PoolApi & CensusPool));
  metrics.observe({ census, now: () => clock.now(), watchers: options.watchers, storeQueue: options.storeQueue });
  return {
    metrics,
    census,
    pool: instrumentPool(pool, {
      metrics,
      census,
      clock,
      resolveModel: (model, provider) => pool.resolveModel(model, provider),
    }),
    close: () => census.close(),
  };
}
