/**
 * Preloaded into a benchmark's servers (`node --expose-gc -r bench/lib/full-gc-on-signal.cjs`):
 * SIGUSR2 runs one full (mark-compact) collection at once. bench/native-lease-ab.ts sends it
 * while calls are in flight, so that every server, the no-op included, is measured after a
 * mark-compact under load: a server that has run one collects its transport's per-call objects
 * differently from one that has not (BENCHMARKS.md §5, "What the collector copies per call").
 */
process.on("SIGUSR2", () => {
  if (typeof globalThis.gc !== "function") throw new Error("full-gc-on-signal.cjs needs node --expose-gc");
  // Without arguments: node 20's V8 runs a scavenge for any options object, `{ type: "major" }` included.
  globalThis.gc();
});
