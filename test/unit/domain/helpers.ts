import { ManualClock } from "../../../src/domain/clock";
import { ErrorCode, PoolError } from "../../../src/domain/errors";
import { KeyPool, type PoolOptions } from "../../../src/domain/key-pool";
import type { PoolEvent } from "../../../src/domain/types";

export const T0 = Date.UTC(2026, 0, 1);

/** A pool on a ManualClock that records every event it publishes. */
export function makePool(options: Partial<PoolOptions> = {}) {
  const clock = new ManualClock(T0);
  const pool = new KeyPool({ clock, ...options });
  const events: PoolEvent[] = [];
  pool.changes.subscribe((e) => events.push(e));
  return { clock, pool, events };
}

/** Runs fn, requires a PoolError with `code`, returns it. */
export function poolError(fn: () => unknown, code: ErrorCode): PoolError {
  let thrown: unknown;
  try {
    fn();
  } catch (error) {
    thrown = error;
  }
  expect(thrown).toBeInstanceOf(PoolError);
  const error = thrown as PoolError;
  expect(ErrorCode[error.code]).toBe(ErrorCode[code]);
  return error;
}

export async function poolRejection(promise: Promise<unknown>, code: ErrorCode): Promise<PoolError> {
  const error = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(PoolError);
  expect(ErrorCode[(error as PoolError).code]).toBe(ErrorCode[code]);
  return error as PoolError;
}

/** Lets promise callbacks run (waiters resolve through promises). */
export const flush = () => new Promise<void>((resolve) => setImmediate(resolve));
