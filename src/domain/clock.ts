/**
 * Time, injected. The pool never reads Date.now() or calls setTimeout itself, so that every rule
 * is tested with a ManualClock instead of sleeping.
 */
export interface Timer {
  cancel(): void;
}

export interface Clock {
  /** Milliseconds since the Unix epoch. */
  now(): number;
  /** Runs `callback` once, `delayMs` from now (0 or less: on the next turn). */
  setTimer(delayMs: number, callback: () => void): Timer;
}

/** The longest delay setTimeout honours. */
export const MAX_TIMER_DELAY_MS = 2 ** 31 - 1;

/** The real clock. Timers are unref'd: a pending timer never keeps the process alive. */
export const systemClock: Clock = {
  now: () => Date.now(),
  setTimer(delayMs, callback) {
    // setTimeout fires at once for delays past 2^31-1 ms (24.8 days); fire early instead, and
    // let the caller (which re-checks the time) schedule again.
    const handle = setTimeout(callback, Math.min(MAX_TIMER_DELAY_MS, Math.max(0, delayMs)));
    handle.unref();
    return { cancel: () => clearTimeout(handle) };
  },
};

interface ScheduledTimer {
  at: number;
  seq: number;
  callback: () => void;
  cancelled: boolean;
}

/**
 * A clock that moves only when told to. `advance` fires every timer that falls due, in time
 * order, with `now()` equal to each timer's due time while its callback runs.
 */
export class ManualClock implements Clock {
  private current: number;
  private seq = 0;
  private timers: ScheduledTimer[] = [];

  constructor(start = Date.UTC(2026, 0, 1)) {
    this.current = start;
  }

  now(): number {
    return this.current;
  }

  setTimer(delayMs: number, callback: () => void): Timer {
    const timer: ScheduledTimer = {
      at: this.current + Math.max(0, delayMs),
      seq: this.seq++,
      callback,
      cancelled: false,
    };
    this.timers.push(timer);
    return { cancel: () => void (timer.cancelled = true) };
  }

  /** Moves time forward by `ms`, firing due timers in order. */
  advance(ms: number): void {
    this.advanceTo(this.current + ms);
  }

  /** Moves time forward to `time` (never backwards), firing due timers in order. */
  advanceTo(time: number): void {
    for (;;) {
      this.timers = this.timers.filter((t) => !t.cancelled);
      let next: ScheduledTimer | undefined;
      for (const t of this.timers) {
        if (t.at <= time && (!next || t.at < next.at || (t.at === next.at && t.seq < next.seq))) {
          next = t;
        }
      }
      if (!next) break;
      this.timers.splice(this.timers.indexOf(next), 1);
      this.current = Math.max(this.current, next.at);
      next.callback();
    }
    this.current = Math.max(this.current, time);
  }

  /** How many timers are scheduled and not cancelled (for leak checks in tests). */
  pendingTimers(): number {
    return this.timers.filter((t) => !t.cancelled).length;
  }
}
