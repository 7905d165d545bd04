/**
 * What stream-map renewal (src/server/stream-map-renewal.ts) replaces, read from outside: node's
 * map of a session's open streams, and a full collection on demand.
 */
import type * as http2 from "node:http2";
import * as v8 from "node:v8";
import * as vm from "node:vm";

/** node's map of `session`'s open streams, found the way the module finds it. */
export function streamMapOf(session: http2.Http2Session): Map<number, unknown> {
  const symbol = Object.getOwnPropertySymbols(session).find((s) => s.description === "state");
  const streams = symbol && (session as unknown as Record<symbol, { streams?: Map<number, unknown> }>)[symbol]?.streams;
  if (!streams) throw new Error("this node's HTTP/2 session has no stream map");
  return streams;
}

/** Runs one full (mark-compact) collection now; a test process has no `gc` of its own. */
export function fullCollection(): void {
  v8.setFlagsFromString("--expose-gc");
  (vm.runInNewContext("gc") as () => void)();
}

/** Waits, in steps of 10 ms, until `condition` holds; fails after 5 s naming `what`. */
export async function until(condition: () => boolean, what: string): Promise<void> {
  for (let waited = 0; !condition(); waited += 10) {
    if (waited > 5_000) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}
