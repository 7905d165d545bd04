/**
 * onStreamEnd (src/transport/stream-end.ts): what error mapping and the request log see of a
 * server stream. Messages pass through in order; `ok` runs once after the last; an error is
 * replaced by what `error` returns; a consumer that stops early ends the inner stream and neither
 * runs.
 */
import { PULL, pullerOf } from "../../../src/watch/pull-now";
import { onStreamEnd } from "../../../src/transport/stream-end";

async function* counted(n: number, failAt?: number) {
  for (let i = 0; i < n; i++) {
    if (i === failAt) throw new Error(`raw failure at ${i}`);
    yield i;
  }
}

describe("onStreamEnd", () => {
  test("passes every message through, then runs ok once", async () => {
    const ok = jest.fn();
    const error = jest.fn((err: unknown) => err);
    const seen: number[] = [];
    const wrapped = onStreamEnd(counted(5), { ok, error });
    for await (const m of wrapped) {
      expect(ok).not.toHaveBeenCalled();
      seen.push(m);
    }
    expect(seen).toEqual([0, 1, 2, 3, 4]);
    expect(ok).toHaveBeenCalledTimes(1);
    expect(error).not.toHaveBeenCalled();
  });

  test("throws what error returns in place of the stream's error, after the messages before it, and then ends", async () => {
    const ok = jest.fn();
    const mapped = new Error("mapped");
    const error = jest.fn(() => mapped);
    const it = onStreamEnd(counted(5, 2), { ok, error })[Symbol.asyncIterator]();
    expect(await it.next()).toEqual({ done: false, value: 0 });
    expect(await it.next()).toEqual({ done: false, value: 1 });
    await expect(it.next()).rejects.toBe(mapped);
    expect(error).toHaveBeenCalledWith(expect.objectContaining({ message: "raw failure at 2" }));
    expect(await it.next()).toEqual({ done: true, value: undefined });
    expect(ok).not.toHaveBeenCalled();
  });

  test("maps an iterable that fails to start", async () => {
    const mapped = new Error("mapped");
    const broken: AsyncIterable<number> = {
      [Symbol.asyncIterator]() {
        throw new Error("cannot start");
      },
    };
    const it = onStreamEnd(broken, { error: () => mapped })[Symbol.asyncIterator]();
    await expect(it.next()).rejects.toBe(mapped);
  });

  test("a consumer that stops early ends the inner stream; neither ok nor error runs", async () => {
    const ok = jest.fn();
    const error = jest.fn((err: unknown) => err);
    let cleanedUp = false;
    async function* inner() {
      try {
        for (let i = 0; ; i++) yield i;
      } finally {
        cleanedUp = true;
      }
    }
    for await (const m of onStreamEnd(inner(), { ok, error })) {
      if (m === 3) break;
    }
    expect(cleanedUp).toBe(true);
    expect(ok).not.toHaveBeenCalled();
    expect(error).not.toHaveBeenCalled();
  });
});

describe("onStreamEnd over a stream that offers PULL (src/watch/pull-now.ts)", () => {
  /** Messages due one by one from `script`; a function throws instead; null: nothing due yet. */
  function pulled(script: (number | null | (() => never))[]) {
    let at = 0;
    const readies: (() => void)[] = [];
    const it = {
      next: () => Promise.reject(new Error("next() must not be used")),
      [PULL]: (ready: () => void): IteratorResult<number> | null => {
        if (at >= script.length) return { done: true, value: undefined };
        const step = script[at++]!;
        if (step === null) {
          readies.push(ready);
          return null;
        }
        if (typeof step === "function") step();
        return { done: false, value: step as number };
      },
    };
    return { iterable: { [Symbol.asyncIterator]: () => it } as AsyncIterable<number>, readies };
  }

  test("the wrapper offers PULL: messages and waits pass through, ok runs once after the last", () => {
    const ok = jest.fn();
    const { iterable, readies } = pulled([1, null, 2]);
    const wrapped = onStreamEnd(iterable, { ok, error: (err) => err })[Symbol.asyncIterator]();
    const puller = pullerOf(wrapped)!;
    expect(puller).toBeDefined();
    const ready = jest.fn();
    expect(puller[PULL](ready)).toEqual({ done: false, value: 1 });
    expect(puller[PULL](ready)).toBeNull();
    expect(readies).toEqual([ready]); // the inner stream holds the consumer's own callback
    expect(puller[PULL](ready)).toEqual({ done: false, value: 2 });
    expect(ok).not.toHaveBeenCalled();
    expect(puller[PULL](ready)).toEqual({ done: true, value: undefined });
    expect(puller[PULL](ready)).toEqual({ done: true, value: undefined });
    expect(ok).toHaveBeenCalledTimes(1);
  });

  test("the stream's error is thrown as what error returns, after the messages before it, and then it ends", () => {
    const mapped = new Error("mapped");
    const error = jest.fn(() => mapped);
    const { iterable } = pulled([
      1,
      () => {
        throw new Error("raw failure");
      },
      2,
    ]);
    const puller = pullerOf(onStreamEnd(iterable, { error })[Symbol.asyncIterator]())!;
    expect(puller[PULL](() => undefined)).toEqual({ done: false, value: 1 });
    expect(() => puller[PULL](() => undefined)).toThrow(mapped);
    expect(error).toHaveBeenCalledWith(expect.objectContaining({ message: "raw failure" }));
    expect(puller[PULL](() => undefined)).toEqual({ done: true, value: undefined });
  });

  test("over a stream without PULL the wrapper offers none (its consumer uses next())", () => {
    const wrapped = onStreamEnd(counted(2), { error: (err) => err })[Symbol.asyncIterator]();
    expect(pullerOf(wrapped)).toBeUndefined();
  });
});
