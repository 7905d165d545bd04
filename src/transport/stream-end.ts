/**
 * Interceptors that must see how a server stream ends (error mapping, the request log) wrap its
 * messages with this: they pass through unchanged, `ok` runs after the last one, and whatever
 * `error` returns is thrown in place of the stream's error.
 */
export async function* onStreamEnd<M>(
  messages: AsyncIterable<M>,
  end: { ok?: () => void; error: (err: unknown) => unknown },
): AsyncGenerator<M> {
  try {
    yield* messages;
  } catch (err) {
    throw end.error(err);
  }
  end.ok?.();
}
