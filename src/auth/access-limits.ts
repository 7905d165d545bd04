/**
 * The limits that keep one client (or a hostile network) from exhausting the server, each
 * configurable by an environment variable. The pool itself checks the per-field limits of
 * CONTRACT.md (model, key, header, token counts); these are the transport's own.
 */
import { ConfigMessageError } from "../config/config-error";
import { DEFAULT_CAPS, type ConnectionCaps } from "../server/connection-guard";

export class AccessConfigError extends ConfigMessageError {
  override readonly name = "AccessConfigError";
}

export interface AccessLimits {
  /** KEYPOOL_MAX_MESSAGE_BYTES: largest request message accepted (connect's readMaxBytes). */
  maxMessageBytes: number;
  /** KEYPOOL_MAX_WATCHERS: WatchKeys streams open at once, over all clients. */
  maxWatchers: number;
  /** KEYPOOL_MAX_WAITERS: Lease calls waiting for a key, per model family (pool option maxWaitersPerFamily). */
  maxWaitersPerFamily: number;
  /** KEYPOOL_MAX_WAITERS_TOTAL: Lease calls waiting for a key over all families (pool option maxWaiters). */
  maxWaiters: number;
  /** KEYPOOL_MAX_CONCURRENT_STREAMS: HTTP/2 streams one connection may have open at once. */
  maxConcurrentStreams: number;
  /**
   * KEYPOOL_MAX_HEADER_BYTES: total size of a request's headers. Enforced on HTTP/1.1; advertised
   * in HTTP/2 SETTINGS, where node itself resets any stream whose headers pass 64 KiB.
   */
  maxHeaderBytes: number;
  /** KEYPOOL_MAX_CONNECTIONS: connections open at once, over all clients (src/server/connection-guard.ts). */
  maxConnections: number;
  /** KEYPOOL_MAX_CONNECTIONS_PER_ADDRESS: connections open at once from one remote address. */
  maxConnectionsPerAddress: number;
  /** KEYPOOL_MAX_STREAM_RESETS: streams one HTTP/2 connection may reset per 10 s before it is closed (rapid reset). */
  maxStreamResets: number;
}

export const DEFAULT_LIMITS: Readonly<AccessLimits> = {
  maxMessageBytes: 4 * 1024 * 1024,
  maxWatchers: 1000,
  maxWaitersPerFamily: 10000,
  maxWaiters: 5000,
  maxConcurrentStreams: 1000,
  maxHeaderBytes: 64 * 1024,
  maxConnections: DEFAULT_CAPS.maxConnections,
  maxConnectionsPerAddress: DEFAULT_CAPS.maxConnectionsPerAddress,
  maxStreamResets: DEFAULT_CAPS.maxStreamResets,
};

const VARIABLES: Record<keyof AccessLimits, string> = {
  maxMessageBytes: "KEYPOOL_MAX_MESSAGE_BYTES",
  maxWatchers: "KEYPOOL_MAX_WATCHERS",
  maxWaitersPerFamily: "KEYPOOL_MAX_WAITERS",
  maxWaiters: "KEYPOOL_MAX_WAITERS_TOTAL",
  maxConcurrentStreams: "KEYPOOL_MAX_CONCURRENT_STREAMS",
  maxHeaderBytes: "KEYPOOL_MAX_HEADER_BYTES",
  maxConnections: "KEYPOOL_MAX_CONNECTIONS",
  maxConnectionsPerAddress: "KEYPOOL_MAX_CONNECTIONS_PER_ADDRESS",
  maxStreamResets: "KEYPOOL_MAX_STREAM_RESETS",
};

/** Sane bounds: a value outside them is a typo, not a wish. */
const BOUNDS: Record<keyof AccessLimits, [number, number]> = {
  maxMessageBytes: [1024, 1024 * 1024 * 1024],
  maxWatchers: [1, 1_000_000],
  maxWaitersPerFamily: [1, 10_000_000],
  maxWaiters: [1, 10_000_000],
  maxConcurrentStreams: [1, 2 ** 31 - 1],
  maxHeaderBytes: [1024, 64 * 1024],
  maxConnections: [1, 1_000_000],
  maxConnectionsPerAddress: [1, 1_000_000],
  maxStreamResets: [1, 1_000_000],
};

export function loadAccessLimits(env: NodeJS.ProcessEnv): AccessLimits {
  const limits = { ...DEFAULT_LIMITS };
  for (const field of Object.keys(VARIABLES) as (keyof AccessLimits)[]) {
    const variable = VARIABLES[field];
    const raw = env[variable]?.trim();
    if (raw === undefined || raw === "") continue;
    const [min, max] = BOUNDS[field];
    if (!/^\d+$/.test(raw) || Number(raw) < min || Number(raw) > max) {
      throw new AccessConfigError(`${variable} must be a whole number from ${min} to ${max}, got "${raw}"`);
    }
    limits[field] = Number(raw);
  }
  return limits;
}

/**
 * Options for node:http2 createServer/createSecureServer. maxSessionInvalidFrames and
 * maxSessionRejectedStreams make node drop a connection that keeps sending garbage or opening
 * streams it was told not to (rapid reset).
 */
export function http2ServerLimits(limits: AccessLimits) {
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
export function http1ServerLimits(limits: AccessLimits) {
  return { maxHeaderSize: limits.maxHeaderBytes };
}

/** The listener's connection caps (src/server/connection-guard.ts). */
export function connectionCaps(limits: AccessLimits): ConnectionCaps {
  return {
    maxConnections: limits.maxConnections,
    maxConnectionsPerAddress: limits.maxConnectionsPerAddress,
    maxStreamResets: limits.maxStreamResets,
  };
}
