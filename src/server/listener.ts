/**
 * One port for every client: HTTP/2 with prior knowledge (gRPC clients), HTTP/1.1 (browsers,
 * curl, Connect JSON), and TLS with ALPN (h2 or http/1.1) when a certificate is configured.
 *
 * Cleartext connections are sniffed: the first bytes are buffered until they either complete the
 * 24-byte HTTP/2 client preface or stop matching it. The preface may arrive in any number of
 * pieces, so the decision waits for as many bytes as it needs and no more. The bytes read are
 * unshifted back onto the socket before it is handed to the HTTP/2 or HTTP/1.1 server.
 */
import * as http from "node:http";
import * as http2 from "node:http2";
import * as net from "node:net";
import { readGroup, SETTINGS } from "../config/settings";
import { ConnectionGuard, type ConnectionCaps, type ConnectionTimeouts, type GuardReport } from "./connection-guard";
import { connectionCaps } from "./listener-limits";
import { oneSessionPerTurn } from "./session-pacing";
import { ShutdownGrace } from "./shutdown-grace";

export const HTTP2_PREFACE = Buffer.from("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", "latin1");

export type RequestHandler = (
  req: http.IncomingMessage | http2.Http2ServerRequest,
  res: http.ServerResponse | http2.Http2ServerResponse,
) => void;

/** Serves an HTTP/2 stream itself, or returns false and node's compatibility layer makes a request of it. */
export type Http2StreamTaker = (stream: http2.ServerHttp2Stream, headers: http2.IncomingHttpHeaders) => boolean;

export interface TlsMaterial {
  cert: string | Buffer;
  key: string | Buffer;
}

export interface ListenerOptions {
  host: string;
  port: number;
  handler: RequestHandler;
  /** Serves some HTTP/2 streams itself before node's compatibility layer makes a request of them (node-handler.ts). */
  streams?: Http2StreamTaker;
  tls?: TlsMaterial;
  /** Protocol limits (listener-limits.ts): HTTP/2 settings, HTTP/1.1 header size, connection caps. */
  limits?: { http2?: http2.ServerOptions; http1?: http.ServerOptions; connections?: ConnectionCaps };
  /** Header, request and idle timeouts (connection-guard.ts); default: the settings' defaults. */
  timeouts?: ConnectionTimeouts;
  /** Told about each connection refused or closed by a cap or timeout. */
  report?: GuardReport;
}

export interface Listener {
  /** The bound port (the real one when 0 was asked). */
  readonly port: number;
  readonly host: string;
  readonly tls: boolean;
  /** Stops accepting connections at once; ends HTTP/2 sessions with GOAWAY. */
  stopAccepting(): void;
  /**
   * Waits until every connection has closed; after `graceMs`, destroys those left. Resolves
   * when the port is released.
   */
  close(graceMs: number): Promise<void>;
}

/** The protocol a cleartext connection speaks, judged from the bytes seen so far. */
export function sniffProtocol(bytes: Buffer): "h2" | "http1" | "undecided" {
  const n = Math.min(bytes.length, HTTP2_PREFACE.length);
  if (bytes.subarray(0, n).equals(HTTP2_PREFACE.subarray(0, n))) {
    return n === HTTP2_PREFACE.length ? "h2" : "undecided";
  }
  return "http1";
}

export async function startListener(options: ListenerOptions): Promise<Listener> {
  const sockets = new Set<net.Socket>();
  const sessions = new Set<http2.Http2Session>();
  const trackSession = (session: http2.Http2Session) => {
    sessions.add(session);
    session.once("close", () => sessions.delete(session));
  };
  const trackSocket = (socket: net.Socket) => {
    sockets.add(socket);
    socket.once("close", () => sockets.delete(socket));
  };

  // Without settings (embedders, tests), the defaults of the settings table.
  const timeouts = options.timeouts ?? readGroup({}, SETTINGS.connections);
  const caps = options.limits?.connections ?? connectionCaps(readGroup({}, SETTINGS.limits));
  const guard = new ConnectionGuard(timeouts, caps, options.report);
  const watchSession = (session: http2.ServerHttp2Session) => {
    trackSession(session);
    guard.watchSession(session);
  };
  // node's HTTP/1.1 timeouts: complete headers within headersMs, the whole request within
  // requestMs (both answered 408), and a kept-alive connection closed after idleMs unused.
  const http1Timeouts = {
    headersTimeout: timeouts.headersMs,
    requestTimeout: Math.max(timeouts.requestMs, timeouts.headersMs),
    keepAliveTimeout: timeouts.idleMs,
    // How often node looks for requests past those timeouts: a tenth of the shorter one.
    connectionsCheckingInterval: Math.max(10, Math.min(1000, Math.floor(timeouts.headersMs / 10))),
  };

  let server: net.Server;
  let http1: http.Server | undefined;
  if (options.tls) {
    const secure = http2.createSecureServer(
      {
        ...options.limits?.http2,
        ...options.limits?.http1,
        ...http1Timeouts,
        cert: options.tls.cert,
        key: options.tls.key,
        allowHTTP1: true,
        ALPNProtocols: ["h2", "http/1.1"],
      },
      options.handler,
    );
    // The HTTP/1.1 side of a secure HTTP/2 server reads these as properties (keepAliveTimeout
    // is not one of its options).
    Object.assign(secure, http1Timeouts);
    if (options.streams) offerStreamsFirst(secure, options.streams);
    secure.on("session", watchSession);
    secure.on("connection", (socket: net.Socket) => {
      if (guard.admit(socket)) trackSocket(socket);
    });
    server = secure;
  } else {
    const h2 = http2.createServer({ ...options.limits?.http2 }, options.handler);
    if (options.streams) offerStreamsFirst(h2, options.streams);
    h2.on("session", watchSession);
    http1 = http.createServer({ ...options.limits?.http1, ...http1Timeouts }, options.handler);
    // node checks header and request timeouts from a timer that 'listening' starts. This server
    // never listens (the cleartext port's sockets reach it through emit('connection') once
    // sniffed), so without this event no timeout is ever checked and a half-sent request holds
    // its socket forever.
    http1.emit("listening");
    const h1 = http1;
    const toH2 = oneSessionPerTurn((socket) => h2.emit("connection", socket));
    server = net.createServer((socket) => {
      if (!guard.admit(socket)) return;
      trackSocket(socket);
      handOver(socket, toH2, h1, timeouts.headersMs);
    });
  }
  server.maxConnections = guard.caps.maxConnections;
  server.on("drop", (data?: { remoteAddress?: string }) =>
    options.report?.("refused", { remoteAddress: data?.remoteAddress, limit: guard.caps.maxConnections, cap: "total" }),
  );

  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(options.port, options.host, () => {
      server.off("error", reject);
      resolve();
    });
  });
  const address = server.address() as net.AddressInfo;
  let closing: Promise<void> | undefined;

  const stopAccepting = () => {
    if (server.listening) server.close();
    for (const session of sessions) if (!session.closed) session.close();
    http1?.closeIdleConnections();
  };

  return {
    port: address.port,
    host: options.host,
    tls: Boolean(options.tls),
    stopAccepting,
    close(graceMs: number) {
      closing ??= (async () => {
        const released = new Promise<void>((resolve) => {
          if (!server.listening) return resolve();
          server.once("close", () => resolve());
        });
        stopAccepting();
        const grace = new ShutdownGrace(graceMs);
        while (sockets.size > 0 && !grace.over) {
          http1?.closeIdleConnections();
          await grace.tick();
        }
        for (const session of sessions) session.destroy();
        for (const socket of sockets) socket.destroy();
        // Stops node's timeout checks on the HTTP/1.1 side (it never listened: nothing else to close).
        http1?.close();
        await released;
      })();
      return closing;
    },
  };
}

/**
 * node's HTTP/2 server makes a compatibility request and response of every stream (its 'stream'
 * listener, added with the request handler) and emits 'request'. That listener is moved behind
 * `taker`: a stream the taker serves never gets them.
 */
function offerStreamsFirst(server: http2.Http2Server | http2.Http2SecureServer, taker: Http2StreamTaker): void {
  const compat = server.listeners("stream");
  if (compat.length !== 1) throw new Error(`node's HTTP/2 server has ${compat.length} stream listeners where keypool expects its one compatibility listener`);
  const toCompat = compat[0] as (...args: unknown[]) => void;
  server.removeListener("stream", toCompat);
  server.on("stream", (stream: http2.ServerHttp2Stream, headers: http2.IncomingHttpHeaders, ...rest: unknown[]) => {
    if (!taker(stream, headers)) toCompat.call(server, stream, headers, ...rest);
  });
}

/** Reads just enough of a cleartext connection to know its protocol, then hands it over. */
function handOver(socket: net.Socket, h2: (socket: net.Socket) => void, h1: http.Server, silentMs: number): void {
  let seen: Buffer = Buffer.alloc(0);
  // Silent too long before its protocol is known: the headers timeout, before any header.
  const timer = setTimeout(() => socket.destroy(), silentMs);
  const cleanup = () => {
    clearTimeout(timer);
    socket.off("data", onData);
    socket.off("error", onError);
    socket.off("close", cleanup);
  };
  const onError = () => cleanup(); // the socket is closing anyway; nothing to hand over
  const onData = (chunk: Buffer) => {
    seen = seen.length === 0 ? chunk : Buffer.concat([seen, chunk]);
    const protocol = sniffProtocol(seen);
    if (protocol === "undecided") return;
    cleanup();
    socket.pause();
    socket.unshift(seen);
    if (protocol === "h2") {
      // The HTTP/2 session takes the unshifted bytes from the socket's buffer itself.
      h2(socket);
    } else {
      h1.emit("connection", socket);
      socket.resume();
    }
  };
  socket.on("data", onData);
  socket.on("error", onError);
  socket.on("close", cleanup);
}
