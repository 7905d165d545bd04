/**
 * What a benchmark's server printed about itself, read back on the wall clock: its event-loop
 * stalls (bench/lib/loop-stalls.cjs, preloaded with --require) and its collections (node's
 * --trace-gc, placed with loop-stalls.cjs's CLOCK line).
 */

import * as path from "node:path";

/** The preload (`node --require`) that reports the server's stalls. */
export const LOOP_STALLS = path.join(__dirname, "loop-stalls.cjs");

/** Each stall over 16 ms that loop-stalls.cjs printed (stderr): when it began (wall ms) and how long it lasted. */
export function stallsOf(stderr: string): { at: number; ms: number }[] {
  return stderr
    .split("\n")
    .filter((line) => line.startsWith("STALL "))
    .map((line) => {
      const [, at, ms] = line.split(" ").map(Number);
      return { at: at!, ms: ms! };
    });
}

/** The lines of --trace-gc (stdout) in a wall-clock window, placed with loop-stalls.cjs's CLOCK line. */
export function collections(stdout: string, stderr: string, fromMs: number, toMs: number): { at: number; pauseMs: number; text: string }[] {
  const clock = /^CLOCK ([\d.]+)$/m.exec(stderr);
  if (!clock) return [];
  const t0 = Number(clock[1]);
  const out: { at: number; pauseMs: number; text: string }[] = [];
  for (const line of stdout.split("\n")) {
    const m = /\]\s+(\d+) ms: (.*?), ([\d.]+) \/ [\d.]+ ms.*?\)\s*([^;]*)/.exec(line);
    if (!m) continue;
    const at = t0 + Number(m[1]);
    if (at < fromMs || at > toMs) continue;
    out.push({ at, pauseMs: Number(m[3]), text: `${m[2]!.replace(/\s+/g, " ")} (${m[4]!.trim()})` });
  }
  return out;
}
