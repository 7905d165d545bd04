import { constants, PerformanceObserver, type PerformanceEntry } from "node:perf_hooks";
import { youngGenerationCollector } from "../../../src/server/young-collection";

/** The kinds of the collections V8 reports while `run` runs (node's 'gc' performance entries). */
async function collectionsDuring(run: () => void): Promise<number[]> {
  const kinds: number[] = [];
  const observer = new PerformanceObserver((list) => {
    for (const entry of list.getEntries() as (PerformanceEntry & { detail?: { kind?: number } })[]) kinds.push(entry.detail?.kind ?? -1);
  });
  observer.observe({ entryTypes: ["gc"] });
  run();
  // Entries are delivered asynchronously.
  await new Promise((resolve) => setTimeout(resolve, 50));
  observer.disconnect();
  return kinds;
}

describe("youngGenerationCollector", () => {
  it("runs a young-generation collection on each call", async () => {
    const collect = youngGenerationCollector();
    // V8 may run collections of its own meanwhile (other suites share the process): at least one per call.
    const kinds = await collectionsDuring(() => {
      for (let i = 0; i < 5; i++) collect();
    });
    expect(kinds.filter((kind) => kind === constants.NODE_PERFORMANCE_GC_MINOR).length).toBeGreaterThanOrEqual(5);
  });
});
