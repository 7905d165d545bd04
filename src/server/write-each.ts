/**
 * The loop that writes a server stream's messages on the native port (src/server/grpc-js-adapter.ts),
 * one at a time: the next message is pulled only once the previous one has left for the
 * connection, so a client that stops reading is held back by HTTP/2 flow control and the watch
 * hub coalesces what it has not sent.
 *
 * A stream that offers PULL (src/watch/pull-now.ts: WatchKeys through the interceptors) is
 * pulled without a promise: a watch waiting for its next window holds one callback here, not a
 * pending promise per layer. Any other stream is read with next(), as `for await` would.
 */
import { PULL, pullerOf, type PullNow } from "../watch/pull-now";

/**
 * Writes a message and calls `done` once it has left for the connection (with the error if it
 * could not be written).
 */
export type WriteOne = (message: unknown, done: (err?: Error | null) => void) => void;

/**
 * Writes every message of `messages` with `write`. Resolves after the last one has left; rejects
 * with the stream's error, with a write's error, or with the signal's reason when the signal
 * aborts while a message is being written (the write's own callback may then never come). When
 * the writing stops before the stream's end, the stream is ended with return(), as `for await`
 * ends it when its body throws.
 */
export function writeEach(messages: AsyncIterator<unknown>, signal: AbortSignal, write: WriteOne): Promise<void> {
  return new Promise((resolve, reject) => new EachWriter(messages, signal, write, resolve, reject).start());
}

class EachWriter {
  private readonly puller: PullNow<unknown> | undefined;
  private settled = false;
  /** A message is with `write` and its callback has not come. */
  private writing = false;
  /** The pull loop is on the stack: a write callback that comes within it continues the loop. */
  private looping = false;
  private writtenWithinLoop = false;

  constructor(
    private readonly messages: AsyncIterator<unknown>,
    private readonly signal: AbortSignal,
    private readonly write: WriteOne,
    private readonly resolve: () => void,
    private readonly reject: (reason: unknown) => void,
  ) {
    this.puller = pullerOf(messages);
  }

  start(): void {
    this.signal.addEventListener("abort", this.onAbort);
    this.pullNext();
  }

  private readonly onAbort = () => {
    if (this.writing) this.end(this.signal.reason, true);
  };

  private pullNext(): void {
    if (this.puller) this.pull();
    else this.messages.next().then(this.take, this.failed);
  }

  /** Pulls and writes while messages are due now; `ready` (this again) when one becomes due. */
  private readonly pull = (): void => {
    if (this.settled || this.writing) return;
    this.looping = true;
    try {
      for (;;) {
        let result: IteratorResult<unknown> | null;
        try {
          result = this.puller![PULL](this.pull);
        } catch (err) {
          this.end(err, false);
          return;
        }
        if (result === null) return;
        this.writtenWithinLoop = false;
        this.take(result);
        if (!this.writtenWithinLoop || this.settled) return;
      }
    } finally {
      this.looping = false;
    }
  };

  private readonly take = (result: IteratorResult<unknown>): void => {
    if (this.settled) return;
    if (result.done === true) {
      this.end(undefined, false);
      return;
    }
    if (this.signal.aborted) {
      this.end(this.signal.reason, true);
      return;
    }
    this.writing = true;
    try {
      this.write(result.value, this.written);
    } catch (err) {
      this.end(err, true);
    }
  };

  private readonly written = (err?: Error | null): void => {
    if (!this.writing) return;
    this.writing = false;
    if (this.settled) return;
    if (err) {
      this.end(err, true);
      return;
    }
    if (this.looping) this.writtenWithinLoop = true;
    else this.pullNext();
  };

  private readonly failed = (err: unknown): void => this.end(err, false);

  private end(err: unknown, stopStream: boolean): void {
    if (this.settled) return;
    this.settled = true;
    this.writing = false;
    this.signal.removeEventListener("abort", this.onAbort);
    if (stopStream) {
      try {
        this.messages.return?.().catch(ignore);
      } catch {
        // The stream is ended either way; its own failure to end says nothing to the client.
      }
    }
    if (err === undefined) this.resolve();
    else this.reject(err);
  }
}

function ignore(): void {}
