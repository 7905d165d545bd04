import { MAX_TIMER_DELAY_MS, systemClock } from "../../../src/domain/clock";

describe("systemClock", () => {
  it("never hands setTimeout a delay it would treat as 0 (over 2^31-1 ms)", () => {
    jest.useFakeTimers();
    try {
      let fired = false;
      const timer = systemClock.setTimer(30 * 24 * 3_600_000, () => (fired = true));
      jest.advanceTimersByTime(1000);
      expect(fired).toBe(false);
      jest.advanceTimersByTime(MAX_TIMER_DELAY_MS);
      expect(fired).toBe(true); // early, by design: callers re-check the time
      timer.cancel();
    } finally {
      jest.useRealTimers();
    }
  });
});
