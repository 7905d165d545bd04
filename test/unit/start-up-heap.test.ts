import { setTimeout as tick } from "node:timers/promises";
import { collectStartUpGarbage } from "../../src/start-up-heap";

describe("collectStartUpGarbage", () => {
  it("collects what nothing references, without node --expose-gc", async () => {
    let garbage: object | undefined = { payload: new Array(1000).fill("start-up") };
    const ref = new WeakRef(garbage);
    garbage = undefined;
    // A WeakRef's target is kept until the job that made it ends; the checks compare in place,
    // so that no matcher holds the target.
    await tick(0);
    expect(ref.deref() !== undefined).toBe(true);
    // deref() keeps the target until the end of this job too.
    await tick(0);
    collectStartUpGarbage();
    expect(ref.deref() === undefined).toBe(true);
  });

  it("keeps what is referenced", async () => {
    const kept = { payload: "pool" };
    const ref = new WeakRef(kept);
    await tick(0);
    collectStartUpGarbage();
    expect(ref.deref()).toBe(kept);
  });

  it("leaves no gc function on the application's global", () => {
    const before = typeof (globalThis as { gc?: unknown }).gc;
    collectStartUpGarbage();
    collectStartUpGarbage();
    expect(typeof (globalThis as { gc?: unknown }).gc).toBe(before);
  });
});
