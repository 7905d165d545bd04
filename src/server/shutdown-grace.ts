/**
 * The grace period open connections get at shutdown (docs/operations.md: open streams end with
 * UNAVAILABLE, then connections get a while to finish), counted in time the server could act in.
 *
 * A stall of the whole process (a long garbage collection, a process the machine does not run
 * for a while) does not use it up. After a stall node runs the timers that came due before it
 * polls for the I/O that piled up meanwhile, so a grace measured on the wall clock ends first:
 * connections whose streams had their UNAVAILABLE answers on the way were destroyed with them,
 * and their clients saw the connection drop (CANCELED) instead. Each check counts at most two
 * ticks of time, so the I/O of a stall is read before the grace can end.
 */
const TICK_MS = 20;
const MOST_COUNTED_PER_TICK_MS = 2 * TICK_MS;

export class ShutdownGrace {
  private counted = 0;
  private last = Date.now();

  constructor(private readonly graceMs: number) {}

  get over(): boolean {
    return this.counted >= this.graceMs;
  }

  /** Waits one tick and counts the time it took, at most MOST_COUNTED_PER_TICK_MS of it. */
  async tick(): Promise<void> {
    await new Promise((resolve) => setTimeout(resolve, TICK_MS));
    const now = Date.now();
    this.counted += Math.min(now - this.last, MOST_COUNTED_PER_TICK_MS);
    this.last = now;
  }
}
