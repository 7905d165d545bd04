import { PULL, pullerOf } from "../watch/pull-now";

/**
 * Interceptors that must see how a server stream ends (error mapping, the request log) wrap its
 * messages with this: they pass through unchanged, `ok` runs after the last one, and whatever
 * `error` returns is thrown in place of the stream's error. A consumer that stops early (return)
 * ends the inner stream too, and neither runs.
 *
 * Written as an iterator rather than an async generator: a generator's `yield*` costs several
 * promises per message, and a WatchKeys fan-out passes thousands of messages a second through two
 * of these; here a message costs one, and none when the inner stream can be pulled without a
 * promise (PULL, src/watch/pull-now.ts): the wrapper then offers PULL too.
 */
export function onStreamEnd<M>(
  messages: AsyncIterable<M>,
  end: { ok?: () => void; error: (err: unknown) => unknown },
): AsyncIterable<M> {
  return {
    [Symbol.asyncIterator](): AsyncIterator<M> {
      let inner: AsyncIterator<M>;
      try {
        inner = messages[Symbol.asyncIterator]();
      } catch (err) {
        return ended(end.error(err));
      }
      let finished = false;
      const passed = (result: IteratorResult<M>): IteratorResult<M> => {
        if (result.done && !finished) {
          finished = true;
          end.ok?.();
        }
        return result;
      };
      const failed = (err: unknown): Promise<never> => {
        finished = true;
        return Promise.reject(end.error(err));
      };
      const wrapper: AsyncIterator<M> = {
        next: () => {
          if (finished) return Promise.resolve({ done: true, value: undefined });
          try {
            return inner.next().then(passed, failed);
          } catch (err) {
            return failed(err);
          }
        },
        return: (value?: unknown) => {
          finished = true;
          if (!inner.return) return Promise.resolve({ done: true, value: undefined });
          return inner.return(value).then(() => ({ done: true, value: undefined }), failed);
        },
      };
      const puller = pullerOf(inner);
      if (!puller) return wrapper;
      return Object.assign(wrapper, {
        [PULL]: (ready: () => void): IteratorResult<M> | null => {
          if (finished) return { done: true, value: undefined };
          let result: IteratorResult<M> | null;
          try {
            result = puller[PULL](ready);
          } catch (err) {
            finished = true;
            throw end.error(err);
          }
          return result === null ? null : passed(result);
        },
      });
    },
  };
}

/** An iterator whose first next() rejects with `error`. */
function ended<M>(error: unknown): AsyncIterator<M> {
  let thrown = false;
  return {
    next: () => {
      if (thrown) return Promise.resolve({ done: true, value: undefined });
      thrown = true;
      return Promise.reject(error);
    },
  };
}
