// Preloaded into a server by bench/watch-storm-stalls.ts --live-heap (node --require): V8's
// sampling heap profiler, keeping only samples of objects still alive, from the start; on each
// SIGUSR2 the profile so far is written to $LIVE_HEAP_DIR/live-<n>.json. Two profiles, before and
// after a storm, differ by what the storm left alive, with the stack that allocated it.
const inspector = require("node:inspector");
const fs = require("node:fs");
const path = require("node:path");
const session = new inspector.Session();
session.connect();
session.post("HeapProfiler.startSampling", { samplingInterval: 4096, includeObjectsCollectedByMajorGC: false, includeObjectsCollectedByMinorGC: false });
let taken = 0;
process.on("SIGUSR2", () => {
  session.post("HeapProfiler.getSamplingProfile", (err, result) => {
    if (err) return void process.stderr.write(`LIVE-HEAP error ${err.message}\n`);
    const file = path.join(process.env.LIVE_HEAP_DIR || ".", `live-${taken++}.json`);
    fs.writeFileSync(file, JSON.stringify(result.profile));
    process.stderr.write(`LIVE-HEAP ${file}\n`);
  });
});
