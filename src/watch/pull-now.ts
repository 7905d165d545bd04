/**
 * A server stream whose next message can be taken without a promise while one is due.
 *
 * An async iterator pays a promise per layer per message: the watch subscription, the WatchKeys
 * stream, each interceptor's wrapper (src/transport/stream-end.ts) and the transport's loop each
 * make one, and while a watch waits for its next window every one of them is pending, held for
 * the window's length: long enough for the young-generation collector to copy them. A stream
 * that also offers PULL is pulled through every layer in one synchronous call; when nothing is
 * due, the innermost layer keeps the one callback it is given and calls it when a message
 * becomes due (or the stream ends), and the transport pulls again.
 *
 * A layer offers PULL only when the layer inside it does. The native port pulls with it
 * (src/server/write-each.ts) and falls back to next() for a stream that does not; the main port
 * uses next(). Either way the messages, their order and how the stream ends are the same.
 */
export const PULL = Symbol("keypool.pull");

export interface PullNow<T> {
  /**
   * The next message if one is due now, or the stream's end (`done`); else null, and `ready` is
   * called once later, when a message is due or the stream has ended or failed: pull again then.
   * Throws what next() would reject with. `ready` is never called from within this call.
   */
  [PULL](ready: () => void): IteratorResult<T> | null;
}

/** The iterator's PULL, if it offers one. */
export function pullerOf<T>(iterator: AsyncIterator<T>): PullNow<T> | undefined {
  return PULL in iterator ? (iterator as AsyncIterator<T> & PullNow<T>) : undefined;
}
