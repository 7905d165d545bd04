/**
 * What stream-map renewal (src/server/stream-map-renewal.ts) replaces, read from outside, and
 * full collections on demand: node's map of a session's open streams, and a FullCollections
 * source a test fires itself, so that renewal is tested without forcing V8's collector inside a
 * test process.
 */
import type * as http2 from "node:http2";
import type { FullCollections } from "../../src/server/stream-map-renewal";

/** node's map of `session`'s open streams, found the way the module finds it. */
export function streamMapOf(session: http2.Http2Session): Map<number, unknown> {
  const symbol = Object.getOwnPropertySymbols(session).find((s) => s.description === "state");
  const streams = symbol && (session as unknown as Record<symbol, { streams?: Map<number, unknown> }>)[symbol]?.streams;
  if (!streams) throw new Error("this node's HTTP/2 session has no stream map");
  return streams;
}

/** Full collections that happen when the test says so. */
export class ManualCollections implements FullCollections {
  private readonly listeners = new Set<() => void>();

  subscribe(listener: () => void): () => void {
    const own = () => listener();
    this.listeners.add(own);
    return () => this.listeners.delete(own);
  }

  /** Tells every subscriber that a full collection has run. */
  collect(): void {
    for (const listener of this.listeners) listener();
  }

  get subscribers(): number {
    return this.listeners.size;
  }
}

/** Waits, in steps of 10 ms, until `condition` holds; fails after 5 s naming `what`. */
export async function until(condition: () => boolean, what: string): Promise<void> {
  for (let waited = 0; !condition(); waited += 10) {
    if (waited > 5_000) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}
