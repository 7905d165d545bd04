/**
 * The HTTP/2 and HTTP/1.1 protocol limits that keep one client (or a hostile network) from
 * exhausting the listener. Their values are settings (src/config/settings.ts); the pool checks
 * the per-field limits of each message itself (src/domain/validation.ts).
 */
import type { Settings } from "../config/settings";
import type { ConnectionCaps } from "./connection-guard";

export type ListenerLimitSettings = Settings["limits"];

/**
 * Options for node:http2 createServer/createSecureServer. maxSessionInvalidFrames and
 * maxSessionRejectedStreams make node drop a connection that keeps sending garbage or opening
 * streams it was told not to (rapid reset).
 */
export function http2ServerLimits(limits: ListenerLimitSettings) {
  return {
    settings: {
      maxConcurrentStreams: limits.maxConcurrentStreams,
      maxHeaderListSize: limits.maxHeaderBytes,
    },
    maxHeaderListPairs: 256,
    maxSessionInvalidFrames: 1000,
    maxSessionRejectedStreams: 100,
  };
}

/** Options for node:http createServer (the HTTP/1.1 side of the port). */
export function http1ServerLimits(limits: ListenerLimitSettings) {
  return { maxHeaderSize: limits.maxHeaderBytes };
}

/** The caps on open connections and stream resets (connection-guard.ts). */
export function connectionCaps(limits: ListenerLimitSettings): ConnectionCaps {
  return {
    maxConnections: limits.maxConnections,
    maxConnectionsPerAddress: limits.maxConnectionsPerAddress,
    maxStreamResets: limits.maxStreamResets,
  };
}

/** All three, as startServer's listenerLimits. */
export function listenerLimits(limits: ListenerLimitSettings) {
  return { http2: http2ServerLimits(limits), http1: http1ServerLimits(limits), connections: connectionCaps(limits) };
}
