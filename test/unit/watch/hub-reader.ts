import { PULL } from "../../../src/watch/pull-now";
import type { WatchEvent, WatchSubscription } from "../../../src/watch/watch-subscription";

export const flush = () => new Promise<void>((resolve) => setImmediate(resolve));

/**
 * How Readers ask a subscription for its next message: next() (a promise), or PULL
 * (src/watch/pull-now.ts), pulled again at once when `ready` comes, as the transports'
 * loop does (src/server/write-each.ts). watch-pulled.test.ts runs the watch suites both ways.
 */
let readMode: "next" | "pull" = "next";

export function useReadMode(mode: "next" | "pull"): void {
  readMode = mode;
}

/** Reads a subscription without blocking the test: poll() says what has arrived by now. */
export class Reader {
  private inFlight: Promise<void> | boolean | null = null;
  private arrived: { result?: IteratorResult<WatchEvent>; error?: unknown } | null = null;
  private readonly mode = readMode;

  constructor(readonly subscription: WatchSubscription) {}

  /** The next message if it is available now; undefined if the subscription is still waiting. */
  async poll(): Promise<WatchEvent | "done" | undefined> {
    if (!this.inFlight) {
      if (this.mode === "pull") {
        this.inFlight = true;
        this.pull();
      } else {
        this.inFlight = this.subscription.next().then(
          (result) => void (this.arrived = { result }),
          (error: unknown) => void (this.arrived = { error }),
        );
      }
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

  private readonly pull = (): void => {
    try {
      const result = this.subscription[PULL](this.pull);
      if (result !== null) this.arrived = { result };
    } catch (error) {
      this.arrived = { error };
    }
  };
}
