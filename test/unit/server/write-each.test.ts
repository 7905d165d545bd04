/**
 * writeEach (src/server/write-each.ts): the loop both ports' own stream paths write a server
 * stream with. One message at a time (the next is pulled only once the previous one's write has
 * completed), every message in order, then the end; a stream that offers PULL
 * (src/watch/pull-now.ts) is pulled without promises, any other with next(), to the same
 * effect; a failure of the stream, of a write or a cancellation stops the writing the way a
 * `for await` loop would.
 */
import { PULL, type PullNow } from "../../../src/watch/pull-now";
import { writeEach } from "../../../src/server/write-each";

/** A stream whose messages are made due by the test (due()), offering PULL or not. */
class Source implements AsyncIterator<number> {
  private readonly queue: number[] = [];
  private ended = false;
  private failure: unknown = undefined;
  private ready: (() => void) | null = null;
  private waiter: ((result: IteratorResult<number>) => void) | null = null;
  private waiterFail: ((err: unknown) => void) | null = null;
  returned = 0;
  pulls = 0;

  due(...messages: number[]): void {
    this.queue.push(...messages);
    this.wake();
  }

  end(): void {
    this.ended = true;
    this.wake();
  }

  fail(err: unknown): void {
    this.failure = err;
    this.wake();
  }

  next(): Promise<IteratorResult<number>> {
    this.pulls++;
    return new Promise((resolve, reject) => {
      this.waiter = resolve;
      this.waiterFail = reject;
      this.wake();
    });
  }

  return(): Promise<IteratorResult<number>> {
    this.returned++;
    this.ended = true;
    return Promise.resolve({ done: true, value: undefined });
  }

  take(): IteratorResult<number> | null {
    if (this.failure !== undefined) throw this.failure;
    if (this.queue.length > 0) return { done: false, value: this.queue.shift()! };
    if (this.ended) return { done: true, value: undefined };
    return null;
  }

  private wake(): void {
    if (this.ready) {
      const ready = this.ready;
      this.ready = null;
      ready();
      return;
    }
    if (!this.waiter) return;
    let result: IteratorResult<number> | null;
    try {
      result = this.take();
    } catch (err) {
      const fail = this.waiterFail!;
      this.waiter = this.waiterFail = null;
      fail(err);
      return;
    }
    if (result === null) return;
    const resolve = this.waiter;
    this.waiter = this.waiterFail = null;
    resolve(result);
  }

  pullWith(ready: () => void): IteratorResult<number> | null {
    this.pulls++;
    const result = this.take();
    if (result === null) this.ready = ready;
    return result;
  }
}

class PulledSource extends Source implements PullNow<number> {
  [PULL](ready: () => void): IteratorResult<number> | null {
    return this.pullWith(ready);
  }
}

const flush = () => new Promise<void>((resolve) => setImmediate(resolve));

/** A connection whose writes complete when the test says (complete()). */
function connection() {
  const written: number[] = [];
  const pending: ((err?: Error | null) => void)[] = [];
  return {
    written,
    get inFlight() {
      return pending.length;
    },
    write: (message: unknown, done: (err?: Error | null) => void) => {
      written.push(message as number);
      pending.push(done);
    },
    complete(err?: Error) {
      pending.shift()!(err);
    },
  };
}

describe.each([
  ["a stream that offers PULL", () => new PulledSource()],
  ["a stream read with next()", () => new Source()],
])("writeEach, %s", (_name, make) => {
  test("writes every message in order, one at a time, and resolves after the last write and the end", async () => {
    const source = make();
    const conn = connection();
    let settled = false;
    const done = writeEach(source, new AbortController().signal, conn.write).then(() => (settled = true));
    source.due(1, 2, 3);
    await flush();
    expect(conn.written).toEqual([1]);
    expect(conn.inFlight).toBe(1);
    conn.complete();
    await flush();
    expect(conn.written).toEqual([1, 2]);
    conn.complete();
    await flush();
    conn.complete();
    await flush();
    expect(conn.written).toEqual([1, 2, 3]);
    // Nothing due: it waits for the stream, writing nothing.
    await flush();
    expect(conn.inFlight).toBe(0);
    source.due(4);
    await flush();
    expect(conn.written).toEqual([1, 2, 3, 4]);
    source.end();
    await flush();
    expect(settled).toBe(false); // the last write has not completed
    conn.complete();
    await done;
    expect(source.returned).toBe(0);
  });

  test("a write that completes at once (within write) still writes the rest in order", async () => {
    const source = make();
    const written: number[] = [];
    source.due(1, 2, 3);
    source.end();
    await writeEach(source, new AbortController().signal, (message, done) => {
      written.push(message as number);
      done();
    });
    expect(written).toEqual([1, 2, 3]);
  });

  test("the stream's error rejects, after the messages before it, and the stream is not returned", async () => {
    const source = make();
    const conn = connection();
    const done = writeEach(source, new AbortController().signal, conn.write);
    source.due(1);
    await flush();
    conn.complete();
    const failure = new Error("stream failed");
    source.fail(failure);
    await expect(done).rejects.toBe(failure);
    expect(conn.written).toEqual([1]);
    expect(source.returned).toBe(0);
  });

  test("a write's error rejects and ends the stream (return), as a `for await` body that throws does", async () => {
    const source = make();
    const conn = connection();
    const done = writeEach(source, new AbortController().signal, conn.write);
    source.due(1, 2);
    await flush();
    const broken = new Error("stream reset");
    conn.complete(broken);
    await expect(done).rejects.toBe(broken);
    expect(conn.written).toEqual([1]);
    expect(source.returned).toBe(1);
  });

  test("a cancellation while a write is pending rejects with the signal's reason at once and ends the stream", async () => {
    const source = make();
    const conn = connection();
    const abort = new AbortController();
    const done = writeEach(source, abort.signal, conn.write);
    source.due(1, 2);
    await flush();
    const reason = new Error("canceled");
    abort.abort(reason);
    await expect(done).rejects.toBe(reason);
    expect(source.returned).toBe(1);
    conn.complete(); // the write's own callback, late: nothing more is written
    await flush();
    expect(conn.written).toEqual([1]);
  });

  test("a message due after a cancellation is not written", async () => {
    const source = make();
    const conn = connection();
    const abort = new AbortController();
    const done = writeEach(source, abort.signal, conn.write);
    await flush();
    abort.abort(new Error("canceled"));
    source.due(1);
    await expect(done).rejects.toThrow("canceled");
    expect(conn.written).toEqual([]);
  });
});

test("a stream that offers PULL is never asked with next()", async () => {
  const source = new PulledSource();
  const next = jest.spyOn(source, "next");
  const conn = connection();
  const done = writeEach(source, new AbortController().signal, conn.write);
  for (let i = 0; i < 5; i++) {
    source.due(i);
    await flush();
    conn.complete();
  }
  source.end();
  await done;
  expect(conn.written).toEqual([0, 1, 2, 3, 4]);
  expect(next).not.toHaveBeenCalled();
});
