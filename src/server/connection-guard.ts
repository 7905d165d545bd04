/**
 * What keeps idle, slow and abusive connections from holding the server's sockets and memory:
 *
 * - Caps: connections open at once, in total (node's own `maxConnections`) and per remote
 *   address. A connection beyond a cap is closed as soon as it is accepted.
 * - HTTP/2 idle timeout: a session with no open stream for `idleMs` is closed with GOAWAY. A
 *   WatchKeys stream keeps its session busy however quiet it is (heartbeats), as does a Lease
 *   waiting for a key; PINGs alone do not.
 * - HTTP/2 request timeout: a stream whose request has not fully arrived within `requestMs` is
 *   reset (the HTTP/1.1 side gets the same from node's own requestTimeout, listener.ts).
 * - Rapid reset: a client that resets more than `maxStreamResets` streams within
 *   RESET_WINDOW_MS on one connection has each reset cost the server a handler call for nothing:
 *   the connection is closed with GOAWAY ENHANCE_YOUR_CALM.
 */
import * as http2 from "node:http2";
import type * as net from "node:net";

export interface ConnectionTimeouts {
  /** KEYPOOL_HEADERS_TIMEOUT: a new connection must say which protocol and send complete HTTP/1.1 headers within this. */
  headersMs: number;
  /** KEYPOOL_REQUEST_TIMEOUT: a request (headers and body) must have fully arrived within this. */
  requestMs: number;
  /** KEYPOOL_IDLE_TIMEOUT: a connection with no request in progress is closed after this. */
  idleMs: number;
}

export interface ConnectionCaps {
  /** KEYPOOL_MAX_CONNECTIONS: connections open at once, over all clients. */
  maxConnections: number;
  /** KEYPOOL_MAX_CONNECTIONS_PER_ADDRESS: connections open at once from one remote address. */
  maxConnectionsPerAddress: number;
  /** KEYPOOL_MAX_STREAM_RESETS: streams one HTTP/2 connection may reset within RESET_WINDOW_MS. */
  maxStreamResets: number;
}

/** The window over which stream resets are counted (a budget that refills at maxStreamResets per window). */
export const RESET_WINDOW_MS = 10_000;

/** How the guard reports what it refused or closed (the listener has no logger of its own). */
export type GuardReport = (event: "refused" | "idle" | "request-timeout" | "rapid-reset", fields: Record<string, unknown>) => void;

export class ConnectionGuard {
  private readonly perAddress = new Map<string, number>();

  constructor(
    readonly timeouts: ConnectionTimeouts,
    readonly caps: ConnectionCaps,
    readonly report: GuardReport = () => {},
  ) {}

  /** Counts a new connection against its address's cap; closes it and returns false beyond the cap. */
  admit(socket: net.Socket): boolean {
    const address = socket.remoteAddress ?? "unknown";
    const open = this.perAddress.get(address) ?? 0;
    if (open >= this.caps.maxConnectionsPerAddress) {
      socket.destroy();
      this.report("refused", { remoteAddress: address, open, limit: this.caps.maxConnectionsPerAddress, cap: "per address" });
      return false;
    }
    this.perAddress.set(address, open + 1);
    socket.once("close", () => {
      const left = (this.perAddress.get(address) ?? 1) - 1;
      if (left <= 0) this.perAddress.delete(address);
      else this.perAddress.set(address, left);
    });
    return true;
  }

  /**
   * Idle timeout, request timeout and reset budget for one HTTP/2 session. `idle: false` leaves
   * the idle timeout to the HTTP/2 server itself (grpc-js has its own, grpc.max_connection_idle_ms).
   */
  watchSession(session: http2.ServerHttp2Session, { idle = true }: { idle?: boolean } = {}): void {
    const { idleMs, requestMs } = this.timeouts;
    let open = 0;
    let idleTimer: NodeJS.Timeout | undefined;
    const startIdle = () => {
      if (!idle) return;
      idleTimer = setTimeout(() => {
        this.report("idle", { remoteAddress: session.socket?.remoteAddress, idleMs });
        closeNow(session, http2.constants.NGHTTP2_NO_ERROR);
      }, idleMs);
      idleTimer.unref();
    };
    startIdle();

    let budget = this.caps.maxStreamResets;
    let refilledAt = Date.now();
    let closing = false;
    const onReset = () => {
      const now = Date.now();
      budget = Math.min(this.caps.maxStreamResets, budget + ((now - refilledAt) * this.caps.maxStreamResets) / RESET_WINDOW_MS);
      refilledAt = now;
      budget -= 1;
      if (budget >= 0 || closing || session.destroyed) return;
      closing = true;
      this.report("rapid-reset", { remoteAddress: session.socket?.remoteAddress, limit: this.caps.maxStreamResets, windowMs: RESET_WINDOW_MS });
      // A stream's 'close' can run inside nghttp2's processing of the read that reset it; a
      // session destroyed there frees memory nghttp2 still accounts for, and node aborts the
      // process. The next turn is outside that read.
      setImmediate(() => closeNow(session, http2.constants.NGHTTP2_ENHANCE_YOUR_CALM));
    };

    session.on("stream", (stream: http2.ServerHttp2Stream) => {
      open++;
      clearTimeout(idleTimer);
      const requestTimer = setTimeout(() => {
        // Ended: the request has fully arrived (a long answer, such as a WatchKeys stream, is fine).
        if (stream.readableEnded || stream.destroyed) return;
        this.report("request-timeout", { remoteAddress: session.socket?.remoteAddress, requestMs });
        stream.close(http2.constants.NGHTTP2_CANCEL);
      }, requestMs);
      requestTimer.unref();
      // One listener per stream (every call is a stream): the timer itself checks for the request's end.
      stream.once("close", () => {
        clearTimeout(requestTimer);
        // Reset rather than completed ('aborted' is not emitted for a stream reset before its
        // handler ran, which is the flood's whole pattern).
        if (stream.rstCode !== http2.constants.NGHTTP2_NO_ERROR) onReset();
        if (--open === 0 && !session.destroyed && !session.closed) startIdle();
      });
    });
    session.once("close", () => clearTimeout(idleTimer));
  }
}

/** GOAWAY with `code`, then the connection is gone (its streams are reset). */
function closeNow(session: http2.ServerHttp2Session, code: number): void {
  if (session.destroyed) return;
  // destroy(error, code) sends `code` in its GOAWAY only with an error (without one, NO_ERROR);
  // node hands a server session's error to the server's 'sessionError' event, which needs no listener.
  session.destroy(code === http2.constants.NGHTTP2_NO_ERROR ? undefined : new Error("connection closed by keypool's connection guard"), code);
}
