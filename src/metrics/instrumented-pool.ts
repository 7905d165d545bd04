/**
 * The pool as the services see it, with what each call did counted in the metrics: Lease
 * outcomes and waits, reports by status class, tokens by family. Wrapping the PoolApi that every
 * server stack is given (not each stack's handlers) means every port feeds the same counters.
 */
import type { Clock } from "../domain/clock";
import { ErrorCode, PoolError } from "../domain/errors";
import type { Lease, ProviderId } from "../domain/types";
import type { MaybePromise, PoolApi } from "../domain/pool-api";
import type { KeyCensus } from "./key-census";
import type { KeypoolMetrics, LeaseOutcome } from "./metrics";

export interface InstrumentOptions {
  metrics: KeypoolMetrics;
  census: KeyCensus;
  /** The pool's clock: waits are measured in the time the pool waits in. */
  clock: Clock;
  /** Model → provider and family (KeyPool.resolveModel); throws for a model no family maps. */
  resolveModel(model: string, provider?: ProviderId): { provider: ProviderId; family: string };
}

/** The label a family gets when the model maps to none: client text never becomes a label. */
const UNKNOWN = "unknown";

function failureOutcome(err: unknown): LeaseOutcome {
  if (!(err instanceof PoolError)) return "refused";
  switch (err.code) {
    case ErrorCode.ResourceExhausted:
      return "exhausted";
    case ErrorCode.Cancelled:
    case ErrorCode.DeadlineExceeded:
    case ErrorCode.Unavailable:
      return "cancelled";
    default:
      return "refused";
  }
}

/** Runs `ok` or `fail` once `value` settles, now or later; returns the same value. */
function observed<T>(value: MaybePromise<T>, ok: (result: T) => void, fail: (err: unknown) => void): MaybePromise<T> {
  if (value instanceof Promise) {
    return value.then(
      (result) => {
        ok(result);
        return result;
      },
      (err: unknown) => {
        fail(err);
        throw err;
      },
    );
  }
  ok(value);
  return value;
}

export function instrumentPool(pool: PoolApi, options: InstrumentOptions): PoolApi {
  const { metrics, census, clock } = options;

  const target = (model: string, provider?: ProviderId): { provider: ProviderId | "unknown"; family: string } => {
    try {
      return options.resolveModel(model, provider);
    } catch {
      return { provider: provider ?? UNKNOWN, family: UNKNOWN };
    }
  };
  const granted = (lease: Lease, waitedMs: number) => {
    metrics.lease(lease.provider, lease.modelFamily, waitedMs > 0 ? "waited" : "granted");
    metrics.leaseWaited(lease.provider, lease.modelFamily, waitedMs / 1000);
  };
  const failed = (req: { model: string; provider?: ProviderId }, err: unknown, waitedMs: number) => {
    const { provider, family } = target(req.model, req.provider);
    const outcome = failureOutcome(err);
    metrics.lease(provider, family, outcome);
    // A wait that ran out belongs in the wait histogram; a refusal never waited.
    if (outcome === "exhausted" && provider !== UNKNOWN) metrics.leaseWaited(provider, family, waitedMs / 1000);
  };

  return {
    addKeys: (specs) => pool.addKeys(specs),
    removeKey: (keyHash) => pool.removeKey(keyHash),
    disableKey: (keyHash, state, reason) => pool.disableKey(keyHash, state, reason),
    enableKey: (keyHash) => pool.enableKey(keyHash),
    lockout: (req) => pool.lockout(req),
    listKeys: (filter) => pool.listKeys(filter),
    keysAfter: (...args) => pool.keysAfter(...args),
    markForCheck: (...args) => pool.markForCheck(...args),

    lease(req) {
      let result: MaybePromise<Lease>;
      try {
        result = pool.lease(req);
      } catch (err) {
        failed(req, err, 0);
        throw err;
      }
      return observed(result, (lease) => granted(lease, 0), (err) => failed(req, err, 0));
    },

    leaseWhenReady(req) {
      const started = clock.now();
      let result: MaybePromise<Lease>;
      try {
        result = pool.leaseWhenReady(req);
      } catch (err) {
        failed(req, err, 0);
        throw err;
      }
      return observed(
        result,
        (lease) => granted(lease, clock.now() - started),
        (err) => failed(req, err, clock.now() - started),
      );
    },

    reportRateLimit(r) {
      return observed(
        pool.reportRateLimit(r),
        () => {
          const provider = census.providerOf(r.keyHash);
          if (provider) metrics.report(provider, r.statusCode);
        },
        () => {},
      );
    },

    incrementUsage(u) {
      return observed(
        pool.incrementUsage(u),
        () => {
          const provider = census.providerOf(u.keyHash);
          if (!provider) return;
          const { family } = target(u.model, provider);
          metrics.tokensUsed(provider, family, u.inputTokens, u.outputTokens);
        },
        () => {},
      );
    },
  };
}
