// Preloaded into a server by bench/watch-storm-stalls.ts and bench/watch-fanout.ts (node --require,
// bench/lib/server-trace.ts reads what it prints): prints each stall of
// the event loop longer than 16 ms (a 1 ms interval timer that fired late) with its wall time.
const t0 = Date.now() - performance.now();
// Wall time at performance.now() 0, to place --trace-gc's times (ms since the isolate began).
process.stderr.write(`CLOCK ${t0.toFixed(1)}\n`);
let last = performance.now();
setInterval(() => {
  const now = performance.now();
  if (now - last > 16) process.stderr.write(`STALL ${Math.round(t0 + last)} ${(now - last).toFixed(1)}\n`);
  last = now;
}, 1).unref();
