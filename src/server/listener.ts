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

export const HTTP2_PREFACE = Buffer.from("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", "latin1");

/** How long a cleartext connection may stay silent before its protocol is known. */
const SNIFF_TIMEOUT_MS = 10_000;

export type RequestHandler = (
  req: http.IncomingMessage | http2.Http2ServerRequest,
  res: http.ServerResponse | http2.Http2ServerResponse,
) => void;

export interface TlsMaterial {
  cert: string | Buffer;
  key: string | Buffer;
}

export interface ListenerOptions {
  host: string;
  port: number;
  handler: RequestHandler;
  tls?: TlsMaterial;
  /** Protocol limits (listener-limits.ts): HTTP/2 settings, HTTP/1.1 header size. */
  limits?: { http2?: http2.ServerOptions; http1?: http.ServerOptions };
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

  let server: net.Server;
  let http1: http.Server | undefined;
  if (options.tls) {
    const secure = http2.createSecureServer(
      {
        ...options.limits?.http2,
        ...options.limits?.http1,
        cert: options.tls.cert,
        key: options.tls.key,
        allowHTTP1: true,
        ALPNProtocols: ["h2", "http/1.1"],
      },
      options.handler,
    );
    secure.on("session", trackSession);
    secure.on("connection", trackSocket);
    server = secure;
  } else {
    const h2 = http2.createServer({ ...options.limits?.http2 }, options.handler);
    h2.on("session", trackSession);
    http1 = http.createServer({ ...options.limits?.http1 }, options.handler);
    const h1 = http1;
    server = net.createServer((socket) => {
      trackSocket(socket);
      handOver(socket, h2, h1);
    });
  }

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
        const deadline = Date.now() + graceMs;
        while (sockets.size > 0 && Date.now() < deadline) {
          http1?.closeIdleConnections();
          await new Promise((resolve) => setTimeout(resolve, 20));
        }
        for (const session of sessions) session.destroy();
        for (const socket of sockets) socket.destroy();
        await released;
      })();
      return closing;
    },
  };
}

/** Reads just enough of a cleartext connection to know its protocol, then hands it over. */
function handOver(socket: net.Socket, h2: http2.Http2Server, h1: http.Server): void {
  let seen: Buffer = Buffer.alloc(0);
  const timer = setTimeout(() => socket.destroy(), SNIFF_TIMEOUT_MS);
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
      h2.emit("connection", socket);
    } else {
      h1.emit("connection", socket);
      socket.resume();
    }
  };
  socket.on("data", onData);
  socket.on("error", onError);
  socket.on("close", cleanup);
}
