import { Code, ConnectError, type Interceptor } from "@connectrpc/connect";

const WATCH_METHOD = "keypool.v1.KeyPoolService/WatchKeys";

/**
 * Caps the number of WatchKeys streams open at once (KEYPOOL_MAX_WATCHERS): past the cap a new
 * stream gets RESOURCE_EXHAUSTED at once, before it costs a snapshot. Each stream gives its slot
 * back exactly once, when it ends for whatever reason: completed, failed, or the client left
 * (connect aborts the call's signal in every one of those cases; the iterator's `finally` is a
 * second guard).
 */
export interface WatcherLimit {
  readonly interceptor: Interceptor;
  /** Streams open now (for tests and metrics). */
  readonly open: number;
  readonly max: number;
}

export function createWatcherLimit(max: number): WatcherLimit {
  let open = 0;
  const interceptor: Interceptor = (next) => async (req) => {
    if (!req.stream || `${req.service.typeName}/${req.method.name}` !== WATCH_METHOD) return next(req);
    if (open >= max) {
      throw new ConnectError(
        `too many WatchKeys streams are open (the limit is ${max}, set by KEYPOOL_MAX_WATCHERS); retry later`,
        Code.ResourceExhausted,
      );
    }
    open++;
    let released = false;
    const release = () => {
      if (released) return;
      released = true;
      open--;
      req.signal.removeEventListener("abort", release);
    };
    if (req.signal.aborted) release();
    else req.signal.addEventListener("abort", release);
    try {
      const res = await next(req);
      if (!res.stream) {
        release();
        return res;
      }
      return { ...res, message: releasing(res.message, release) };
    } catch (err) {
      release();
      throw err;
    }
  };
  return {
    interceptor,
    get open() {
      return open;
    },
    max,
  };
}

async function* releasing<T>(messages: AsyncIterable<T>, release: () => void): AsyncIterable<T> {
  try {
    yield* messages;
  } finally {
    release();
  }
}
