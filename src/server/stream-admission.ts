/**
 * Starts streaming calls (WatchKeys, Health/Watch, reflection) a few per turn of the event loop.
 *
 * A client that opens a hundred streams at once sends their HEADERS in one read, and the server
 * would run every stream's handler, subscription and first message in that one turn: the calls
 * that arrive meanwhile (a Lease, a GetLockoutPeriod) wait behind all of them. Here a new stream
 * only joins a queue in the turn it arrives; later turns start `perTurn` of them each, so any
 * call waits for at most one such batch. Unary calls never queue.
 *
 * The queue is bounded: a stream arriving while `maxWaiting` wait already is refused at once, and
 * the caller answers it with a status clients retry (REFUSED_STREAM, 503 or UNAVAILABLE).
 */
export interface StreamAdmissionOptions {
  /** Streams started per turn of the event loop. */
  perTurn: number;
  /** Streams that may wait to start; the next one is refused. */
  maxWaiting: number;
  /** Runs the next batch in a later turn (default setImmediate: after the turn's I/O). */
  defer?: (callback: () => void) => void;
}

/**
 * Streams started per turn: each start costs a handler, a subscription and a first message (on
 * the main port connect-node's whole stream pipeline), a few milliseconds for a handful.
 */
export const STREAM_STARTS_PER_TURN = 2;
/**
 * Streams waiting to start: several thousand dashboards connecting at once wait a few hundred
 * turns; far beyond that a client is flooding, and each waiting stream holds its request.
 */
export const MAX_STREAMS_WAITING_TO_START = 10_000;

interface Waiting {
  start: () => void;
  /** Whether the stream went away while it waited (skipped, and costs no start). */
  gone: () => boolean;
}

export class StreamAdmission {
  private queue: Waiting[] = [];
  private head = 0;
  private scheduled = false;
  private readonly perTurn: number;
  private readonly maxWaiting: number;
  private readonly defer: (callback: () => void) => void;

  constructor(options: StreamAdmissionOptions) {
    if (!(options.perTurn >= 1)) throw new RangeError(`perTurn must be at least 1, got ${options.perTurn}`);
    if (!(options.maxWaiting >= 0)) throw new RangeError(`maxWaiting must not be negative, got ${options.maxWaiting}`);
    this.perTurn = options.perTurn;
    this.maxWaiting = options.maxWaiting;
    this.defer = options.defer ?? ((callback) => void setImmediate(callback));
  }

  /** Streams waiting to start (for tests and metrics). */
  get waiting(): number {
    return this.queue.length - this.head;
  }

  /**
   * Queues a stream's start for a later turn. Returns false (and queues nothing) when the queue is
   * full: the caller refuses the stream.
   */
  admit(start: () => void, gone: () => boolean = () => false): boolean {
    if (this.waiting >= this.maxWaiting) return false;
    this.queue.push({ start, gone });
    if (!this.scheduled) {
      this.scheduled = true;
      this.defer(this.drain);
    }
    return true;
  }

  private readonly drain = (): void => {
    this.scheduled = false;
    let started = 0;
    try {
      while (started < this.perTurn && this.head < this.queue.length) {
        const next = this.queue[this.head]!;
        this.queue[this.head++] = undefined as unknown as Waiting;
        if (next.gone()) continue;
        started++;
        next.start();
      }
    } finally {
      this.afterBatch();
    }
  };

  /** Frees what the batch took and schedules the next one if streams still wait. */
  private afterBatch(): void {
    if (this.head === this.queue.length) {
      this.queue = [];
      this.head = 0;
    } else {
      if (this.head > 1024 && this.head * 2 > this.queue.length) {
        this.queue = this.queue.slice(this.head);
        this.head = 0;
      }
      this.scheduled = true;
      this.defer(this.drain);
    }
  }
}
