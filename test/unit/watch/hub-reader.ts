import type { WatchEvent, WatchSubscription } from "../../../src/watch/watch-subscription";

export const flush = () => new Promise<void>((resolve) => setImmediate(resolve));

/** Reads a subscription without blocking the test: poll() says what has arrived by now. */
export class Reader {
  private inFlight: Promise<void> | null = null;
  private arrived: { result?: IteratorResult<WatchEvent>; error?: unknown } | null = null;

  constructor(readonly subscription: WatchSubscription) {}

  /** The next message if it is available now; undefined if the subscription is still waiting. */
  async poll(): Promise<WatchEvent | "done" | undefined> {
    if (!this.inFlight) {
      this.inFlight = this.subscription.next().then(
        (result) => void (this.arrived = { result }),
        (error: unknown) => void (this.arrived = { error }),
      );
    }
    await flush();
    if (!this.arrived) return undefined;
    const arrived = this.arrived;
    this.arrived = null;
    this.inFlight = null;
    if (arrived.error !== undefined) throw arrived.error;
    return arrived.result!.done ? "done" : arrived.result!.value;
  }

  /** Every message available now (stops at the first wait). */
  async drain(): Promise<WatchEvent[]> {
    const out: WatchEvent[] = [];
    for (;;) {
      const event = await this.poll();
      if (event === undefined || event === "done") return out;
      out.push(event);
    }
  }
}

