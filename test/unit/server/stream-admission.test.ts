import { StreamAdmission } from "../../../src/server/stream-admission";

/** A defer that runs nothing until the test turns the loop (one call = one later turn). */
function manualTurns() {
  let pending: (() => void)[] = [];
  return {
    defer: (callback: () => void) => void pending.push(callback),
    turn() {
      const now = pending;
      pending = [];
      for (const callback of now) callback();
    },
    get scheduled() {
      return pending.length;
    },
  };
}

describe("StreamAdmission", () => {
  it("starts nothing in the turn a stream arrives, then at most perTurn streams per later turn, in arrival order", () => {
    const turns = manualTurns();
    const admission = new StreamAdmission({ perTurn: 3, maxWaiting: 100, defer: turns.defer });
    const started: number[] = [];
    for (let i = 0; i < 8; i++) expect(admission.admit(() => started.push(i))).toBe(true);
    expect(started).toEqual([]);
    expect(admission.waiting).toBe(8);
    turns.turn();
    expect(started).toEqual([0, 1, 2]);
    turns.turn();
    expect(started).toEqual([0, 1, 2, 3, 4, 5]);
    turns.turn();
    expect(started).toEqual([0, 1, 2, 3, 4, 5, 6, 7]);
    expect(admission.waiting).toBe(0);
    // Nothing left: no turn is asked for.
    expect(turns.scheduled).toBe(0);
  });

  it("refuses a stream once maxWaiting wait, and takes new ones again as the queue drains", () => {
    const turns = manualTurns();
    const admission = new StreamAdmission({ perTurn: 2, maxWaiting: 4, defer: turns.defer });
    const started: string[] = [];
    for (const name of ["a", "b", "c", "d"]) expect(admission.admit(() => started.push(name))).toBe(true);
    expect(admission.admit(() => started.push("refused"))).toBe(false);
    expect(admission.waiting).toBe(4);
    turns.turn();
    expect(admission.admit(() => started.push("e"))).toBe(true);
    turns.turn();
    turns.turn();
    expect(started).toEqual(["a", "b", "c", "d", "e"]);
  });

  it("skips streams whose client went away while they waited, without spending a start on them", () => {
    const turns = manualTurns();
    const admission = new StreamAdmission({ perTurn: 2, maxWaiting: 10, defer: turns.defer });
    const started: number[] = [];
    const gone = new Set([0, 2]);
    for (let i = 0; i < 5; i++) admission.admit(() => started.push(i), () => gone.has(i));
    turns.turn();
    expect(started).toEqual([1, 3]);
    turns.turn();
    expect(started).toEqual([1, 3, 4]);
  });

  it("keeps starting the others when one start throws", () => {
    const turns = manualTurns();
    const admission = new StreamAdmission({ perTurn: 1, maxWaiting: 10, defer: turns.defer });
    const started: number[] = [];
    admission.admit(() => {
      throw new Error("handler failed to start");
    });
    admission.admit(() => started.push(1));
    expect(() => turns.turn()).toThrow("handler failed to start");
    turns.turn();
    expect(started).toEqual([1]);
  });

  it("starts streams with setImmediate by default: after the current turn's I/O", async () => {
    const admission = new StreamAdmission({ perTurn: 1, maxWaiting: 10 });
    const order: string[] = [];
    admission.admit(() => order.push("first stream"));
    admission.admit(() => order.push("second stream"));
    await Promise.resolve();
    order.push("same turn");
    await new Promise((resolve) => setImmediate(resolve));
    await new Promise((resolve) => setImmediate(resolve));
    expect(order).toEqual(["same turn", "first stream", "second stream"]);
  });

  it("rejects settings that would start nothing", () => {
    expect(() => new StreamAdmission({ perTurn: 0, maxWaiting: 10 })).toThrow(RangeError);
    expect(() => new StreamAdmission({ perTurn: 1, maxWaiting: -1 })).toThrow(RangeError);
  });
});
