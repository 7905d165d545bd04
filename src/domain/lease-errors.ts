/**
 * What Lease answers when it cannot hand out a key (docs/selection-and-leases.md, "What Lease
 * answers"), written once for every pool that leases.
 */
import { failedPrecondition, resourceExhausted, type PoolError } from "./errors";
import type { WaitTarget } from "./waiters";

/** No ACTIVE key serves the family: FailedPrecondition. */
export function noKeyServes(target: WaitTarget): PoolError {
  const which = target.embedding ? " (embedding models need a non-trial key)" : "";
  return failedPrecondition(`no active ${target.provider} key serves the model family ${target.family}${which}`);
}

/** Every eligible key is busy: ResourceExhausted with the lockout as the retry delay. */
export function everyKeyBusy(target: WaitTarget, lockoutMs: number): PoolError {
  return resourceExhausted(
    `every ${target.provider} key serving ${target.family} is busy; the next is ready in ${lockoutMs} ms`,
    lockoutMs,
  );
}

/** The family's queue of waiting leases is full. */
export function familyQueueFull(maxWaitersPerFamily: number, target: WaitTarget, lockoutMs: number): PoolError {
  return resourceExhausted(
    `${maxWaitersPerFamily} lease requests are already waiting for ${target.provider} family ${target.family}; retry in ${lockoutMs} ms`,
    lockoutMs,
  );
}

/** The server holds as many waiting leases as it may. */
export function waitersFull(maxWaiters: number, lockoutMs: number): PoolError {
  return resourceExhausted(
    `${maxWaiters} lease requests are already waiting for keys, the most this server holds at once (KEYPOOL_MAX_WAITERS_TOTAL); retry in ${lockoutMs} ms`,
    lockoutMs,
  );
}
