/**
 * Gives every open HTTP/2 session a fresh map of its open streams after each full (mark-compact)
 * collection, so that a long-lived connection does not make the young-generation collector keep
 * every finished call.
 *
 * Why: node keeps a session's open streams in a `Map` that gains and loses an entry per call. V8
 * replaces a `Map`'s table as it fills, and the table it leaves holds its entries and a pointer to
 * its successor. A full collection moves the current table to the old generation; from then on
 * each table it leaves is an old object pointing at a young one, so every scavenge keeps the whole
 * chain of later tables and every stream they held (each finished call's objects, about 1.5 KB),
 * until the next full collection, which starts the chain again. On a connection that outlives a
 * full collection, every call is promoted; a fresh `Map` with the same entries starts young and
 * leaves the chain behind. docs/operations.md ("Long-lived connections and the collector") and
 * BENCHMARKS.md §5 have the measurements; bench/map-churn-after-full-gc.cjs shows the mechanism
 * without node's HTTP/2 layer.
 *
 * The map is node's own (`session[kState].streams`), which node reads through the session at
 * every use and never holds across a turn of the event loop. On a node whose sessions no longer
 * have it, renewal does nothing (test/unit/server/stream-map-renewal.test.ts fails there first).
 */
import type * as http2 from "node:http2";
import { PerformanceObserver, constants as perf } from "node:perf_hooks";

/** The part of node's session state this module touches: the open streams by id. */
interface SessionState {
  streams: Map<number, unknown>;
}

const sessions = new Set<http2.Http2Session>();
let observer: PerformanceObserver | undefined;
let stateSymbol: symbol | undefined | null;

/**
 * Keeps `session`'s stream map renewed after every full collection while the session is open.
 * Returns false, and does nothing, when this node's sessions have no stream map to renew.
 */
export function renewStreamMapAfterFullCollections(session: http2.Http2Session): boolean {
  if (!sessionState(session)) return false;
  sessions.add(session);
  session.once("close", () => {
    sessions.delete(session);
    if (sessions.size === 0) stopObserving();
  });
  startObserving();
  return true;
}

/** Gives each tracked session a new map with the same open streams, in the same order. */
function renewStreamMaps(): void {
  for (const session of sessions) {
    const state = sessionState(session);
    if (state) state.streams = new (state.streams.constructor as MapConstructor)(state.streams);
  }
}

function startObserving(): void {
  if (observer) return;
  observer = new PerformanceObserver((list) => {
    if (list.getEntries().some((entry) => (entry as { detail?: { kind?: number } }).detail?.kind === perf.NODE_PERFORMANCE_GC_MAJOR)) {
      renewStreamMaps();
    }
  });
  observer.observe({ entryTypes: ["gc"] });
}

function stopObserving(): void {
  observer?.disconnect();
  observer = undefined;
}

/** node's state of `session`, found once by its symbol's description and checked for a stream map. */
function sessionState(session: http2.Http2Session): SessionState | undefined {
  if (stateSymbol === undefined) {
    stateSymbol = Object.getOwnPropertySymbols(session).find((symbol) => symbol.description === "state") ?? null;
  }
  if (stateSymbol === null) return undefined;
  const state = (session as unknown as Record<symbol, unknown>)[stateSymbol] as Partial<SessionState> | undefined;
  const streams = state?.streams;
  if (!streams || typeof streams.get !== "function" || typeof streams.delete !== "function" || typeof streams.forEach !== "function") {
    return undefined;
  }
  return state as SessionState;
}
