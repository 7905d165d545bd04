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

/** Tells its listener when V8 has run a full collection. */
export interface FullCollections {
  /** Calls `listener` after each full collection until the returned function is called. */
  subscribe(listener: () => void): () => void;
}

/** V8's full collections, as node's performance timeline reports them (`gc` entries of kind major). */
export const v8FullCollections: FullCollections = {
  subscribe(listener) {
    const observer = new PerformanceObserver((list) => {
      if (list.getEntries().some((entry) => (entry as { detail?: { kind?: number } }).detail?.kind === perf.NODE_PERFORMANCE_GC_MAJOR)) {
        listener();
      }
    });
    observer.observe({ entryTypes: ["gc"] });
    return () => observer.disconnect();
  },
};

/** The part of node's session state renewal touches: the open streams by id. */
interface SessionState {
  streams: Map<number, unknown>;
}

/** The open sessions of one server, renewed together after each full collection. */
export class StreamMapRenewal {
  private readonly sessions = new Set<http2.Http2Session>();
  private unsubscribe: (() => void) | undefined;

  constructor(private readonly collections: FullCollections = v8FullCollections) {}

  /**
   * Keeps `session`'s stream map renewed after every full collection while the session is open.
   * Returns false, and does nothing, when this node's sessions have no stream map to renew.
   */
  track(session: http2.Http2Session): boolean {
    if (!sessionState(session)) return false;
    this.sessions.add(session);
    session.once("close", () => {
      this.sessions.delete(session);
      if (this.sessions.size === 0) this.stopListening();
    });
    this.unsubscribe ??= this.collections.subscribe(() => this.renew());
    return true;
  }

  /** Gives each open session a new map with the same open streams, in the same order. */
  private renew(): void {
    for (const session of this.sessions) {
      const state = sessionState(session);
      if (state) state.streams = new (state.streams.constructor as MapConstructor)(state.streams);
    }
  }

  private stopListening(): void {
    this.unsubscribe?.();
    this.unsubscribe = undefined;
  }
}

let stateSymbol: symbol | undefined | null;

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
