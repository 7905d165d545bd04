/**
 * What a long-lived Map with one entry added and removed per call does to the young-generation
 * collector once a full collection has moved it to the old generation, in plain Node with
 * nothing of keypool or grpc-js: an HTTP/2 session keeps its open streams in such a Map.
 * Prints, with `--trace-gc-nvp`, every scavenge's promoted bytes. Before the full collection
 * nothing is promoted; after it, every scavenge keeps and promotes what the map held
 * (BENCHMARKS.md §5, "What the collector copies per call"). `--renew` replaces the map with a
 * copy right after the full collection, and the promotion stops (BENCHMARKS.md §5, "Long-lived
 * connections after a full collection": tried on node's sessions, not kept).
 *
 *   node --expose-gc --trace-gc-nvp bench/map-churn-after-full-gc.cjs [--no-full-gc] [--renew] | grep -o "gc=[a-z]*\|promoted=[0-9]*"
 */
const session = { streams: new Map() };
const inflight = [];
let id = 1;

/** 64 calls open, the oldest closed, leaving 16 open, like h2load's 4 connections x 16 streams. */
function turn() {
  for (let i = 0; i < 64; i++) {
    const stream = { id, parts: Array.from({ length: 64 }, (_, j) => ({ j, bytes: Buffer.allocUnsafe(16) })) };
    session.streams.set(id++, stream);
    inflight.push(stream);
  }
  while (inflight.length > 16) session.streams.delete(inflight.shift().id);
}

const fullGc = !process.argv.includes("--no-full-gc");
let turns = 0;
function loop() {
  for (let k = 0; k < 20; k++) turn();
  if (++turns === 150 && fullGc) {
    console.log("--- one full collection");
    globalThis.gc();
    if (process.argv.includes("--renew")) session.streams = new Map(session.streams);
  }
  if (turns < 300) setImmediate(loop);
}
loop();
