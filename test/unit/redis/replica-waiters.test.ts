/**
 * A replica's waiting leases (src/redis/replica-waiters.ts) on the ManualClock, with the lease
 * attempts answered by the test: first come first served, one attempt per wake-up, a key granted
 * to a waiter that left goes to the next one or is released, deadlines, failures of Redis.
 */
import { ManualClock } from "../../../src/domain/clock";
import { ErrorCode, PoolError } from "../../../src/domain/errors";
import { everyKeyBusy, noKeyServes } from "../../../src/domain/lease-errors";
import type { Lease } from "../../../src/domain/types";
import type { WaitTarget } from "../../../src/domain/waiters";
import { ReplicaWaiters, type LeaseAttempt } from "../../../src/redis/replica-waiters";

const TARGET: WaitTarget = { provider: "openai", family: "gpt4", embedding: false };
const lease = (n: number): Lease => ({
  key: `secret-${n}`,
  keyHash: `oai-${n}`,
  provider: "openai",
  modelFamily: "gpt4",
  organizationId: "",
  leaseId: `${n}-0`,
  leaseExpiresAt: 0,
});

/** Attempts the test answers one by one, in the order they were made. */
function harness() {
  const clock = new ManualClock();
  const pending: ((attempt: LeaseAttempt | Error) => void)[] = [];
  const released: Lease[] = [];
  const failures: unknown[] = [];
  const waiters = new ReplicaWaiters(clock, {
    attempt: () =>
      new Promise<LeaseAttempt>((resolve, reject) => pending.push((a) => (a instanceof Error ? reject(a) : resolve(a)))),
    release: (l) => released.push(l),
    onFailure: (e) => failures.push(e),
  });
  const answer = async (attempt: LeaseAttempt | Error) => {
    await until(() => pending.length > 0);
    pending.shift()!(attempt);
    await flush();
  };
  return { clock, waiters, pending, released, failures, answer };
}

const busy = (lockoutMs: number): LeaseAttempt => ({ kind: "busy", lockoutMs, error: everyKeyBusy(TARGET, lockoutMs) });
const granted = (n: number): LeaseAttempt => ({ kind: "granted", lease: lease(n) });
const flush = () => new Promise((resolve) => setImmediate(resolve));
async function until(condition: () => boolean): Promise<void> {
  for (let i = 0; i < 1000 && !condition(); i++) await flush();
  if (!condition()) throw new Error("condition not met");
}

it("serves waiters first come first served, one attempt at a time, and sleeps until the lockout it was told", async () => {
  const { clock, waiters, pending, answer } = harness();
  const got: string[] = [];
  const first = waiters.wait(TARGET, 60_000).then((l) => got.push(`first:${l.keyHash}`));
  const second = waiters.wait(TARGET, 60_000).then((l) => got.push(`second:${l.keyHash}`));
  await answer(busy(5000));
  // The second waiter arrived while the first attempt was out: one more look, then quiet.
  await answer(busy(5000));
  expect(pending).toHaveLength(0); // no polling: nothing is tried until something happens
  clock.advance(4999);
  await flush();
  expect(pending).toHaveLength(0);
  clock.advance(1);
  await answer(granted(1));
  await answer(granted(2));
  await Promise.all([first, second]);
  expect(got).toEqual(["first:oai-1", "second:oai-2"]);
  expect(waiters.size).toBe(0);
});

it("a key granted while its waiter left goes to the next waiter, or is released when none is left", async () => {
  const { waiters, released, answer } = harness();
  const controller = new AbortController();
  const leaving = waiters.wait(TARGET, 60_000, controller.signal).catch((e: PoolError) => e);
  const staying = waiters.wait(TARGET, 60_000);
  await until(() => waiters.size === 2);
  controller.abort(); // while the attempt for the first waiter is in flight
  expect(((await leaving) as PoolError).code).toBe(ErrorCode.Cancelled);
  await answer(granted(1));
  expect((await staying).keyHash).toBe("oai-1");

  const alone = new AbortController();
  const gone = waiters.wait(TARGET, 60_000, alone.signal).catch((e: PoolError) => e);
  await until(() => waiters.size === 1);
  alone.abort();
  await gone;
  await answer(granted(2));
  expect(released.map((l) => l.keyHash)).toEqual(["oai-2"]);
});

it("at its deadline a waiter gets one last attempt, then the busy error with the lockout; no key left fails them all", async () => {
  const { clock, waiters, answer } = harness();
  const late = waiters.wait(TARGET, 1000).catch((e: PoolError) => e);
  await answer(busy(30_000));
  clock.advance(1000);
  await answer(busy(29_000));
  const error = (await late) as PoolError;
  expect([error.code, error.retryAfterMs]).toEqual([ErrorCode.ResourceExhausted, 29_000]);

  const a = waiters.wait(TARGET, 60_000).catch((e: PoolError) => e);
  const b = waiters.wait(TARGET, 60_000).catch((e: PoolError) => e);
  await answer({ kind: "nokeys", error: noKeyServes(TARGET) });
  expect([((await a) as PoolError).code, ((await b) as PoolError).code]).toEqual([ErrorCode.FailedPrecondition, ErrorCode.FailedPrecondition]);
});

it("keeps its waiters when Redis fails, tries again after a pause, and rejects them with UNAVAILABLE on close", async () => {
  const { clock, waiters, pending, failures, answer } = harness();
  const waiting = waiters.wait(TARGET, 60_000).catch((e: PoolError) => e);
  await answer(new Error("connection lost"));
  expect(failures).toHaveLength(1);
  expect(waiters.size).toBe(1);
  clock.advance(500);
  await until(() => pending.length === 1);
  await answer(busy(10_000));
  waiters.close();
  expect(((await waiting) as PoolError).code).toBe(ErrorCode.Unavailable);
  expect(clock.pendingTimers()).toBe(0);
});
