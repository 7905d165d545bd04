/**
 * One full collection once the pool is loaded, before the listeners accept a call.
 *
 * Loading a large pool leaves its parsing garbage in the old generation, and V8 sets the old
 * generation's next limit from the last mark-compact, which ran before the load. Left alone, the
 * first mark-compact of a large pool falls in its first minutes of traffic; and once node's
 * HTTP/2 sessions have been through a mark-compact while calls are in flight, their scavenges
 * keep each later call's objects until the next mark-compact (BENCHMARKS.md §5, "Start-up's
 * garbage"). Collected here, the garbage goes while nothing is in flight, and the next limit is
 * set from what the pool holds.
 */
import { setFlagsFromString } from "node:v8";
import { runInNewContext } from "node:vm";

/** A full, synchronous collection of this isolate's heap. */
export function collectStartUpGarbage(): void {
  fullCollection()();
}

/**
 * V8's `gc` function without `node --expose-gc`: the flag is set for one new context, which then
 * has it, and unset again, so that the application's own global has no `gc`.
 */
function fullCollection(): () => void {
  const exposed = typeof globalThis.gc === "function";
  if (exposed) return () => globalThis.gc!();
  setFlagsFromString("--expose-gc");
  try {
    return runInNewContext("gc") as () => void;
  } finally {
    setFlagsFromString("--no-expose-gc");
  }
}
