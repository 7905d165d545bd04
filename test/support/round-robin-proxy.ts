/**
 * A load balancer for tests: one loopback port that sends each call (each HTTP/2 stream, each
 * HTTP/1.1 request) to the next of several keypool replicas in turn, as an operator's balancer
 * in front of a fleet does. Cleartext only, HTTP/2 with prior knowledge and HTTP/1.1 on the same
 * port (told apart by the connection preface, as keypool's own listener does). Headers, bodies,
 * trailers, trailers-only answers and resets pass through unchanged, so every client a suite
 * uses (connect-node, grpc-js, buf curl, Python grpcio) works through it unchanged.
 */
import * as http from "node:http";
import * as http2 from "node:http2";
import * as net from "node:net";

export interface RoundRobinProxy {
  readonly port: number;
  readonly url: string;
  /** Calls sent to each backend so far, in backend order. */
  readonly sent: number[];
  close(): Promise<void>;
}

const PREFACE = Buffer.from("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n");
/** Hop-by-hop headers: they belong to one connection and are never forwarded. */
const HOP_BY_HOP = new Set(["connection", "keep-alive", "proxy-connection", "transfer-encoding", "upgrade", "http2-settings", "te", "host"]);
const { NGHTTP2_CANCEL } = http2.constants;

function forwardable(headers: http2.IncomingHttpHeaders | http.IncomingHttpHeaders, keepTe: boolean): http2.OutgoingHttpHeaders {
  const out: http2.OutgoingHttpHeaders = {};
  for (const [name, value] of Object.entries(headers) as [string, string | string[] | undefined][]) {
    if (value === undefined) continue;
    if (name === "te" && keepTe) out["te"] = String(value);
    else if (!HOP_BY_HOP.has(name)) out[name] = value;
  }
  return out;
}

/** Starts the balancer in front of `backends` (base URLs like http://127.0.0.1:50051). */
export async function startRoundRobinProxy(backends: string[]): Promise<RoundRobinProxy> {
  const sent = backends.map(() => 0);
  let turn = 0;
  const next = () => {
    const index = turn++ % backends.length;
    sent[index]!++;
    return index;
  };
  const sessions = new Map<number, http2.ClientHttp2Session>();
  const sessionTo = (index: number) => {
    let session = sessions.get(index);
    if (!session || session.closed || session.destroyed) {
      session = http2.connect(backends[index]!);
      session.on("error", () => {});
      const opened = session;
      opened.on("close", () => {
        if (sessions.get(index) === opened) sessions.delete(index);
      });
      sessions.set(index, session);
    }
    return session;
  };
  const agent = new http.Agent({ keepAlive: true });

  const h2 = http2.createServer({ settings: { maxConcurrentStreams: 10_000 } });
  h2.on("stream", (stream, headers) => {
    const upstream = sessionTo(next()).request(forwardable(headers, true), { endStream: false });
    upstream.on("response", (responseHeaders, flags) => {
      if (stream.destroyed) return;
      const endStream = (flags & http2.constants.NGHTTP2_FLAG_END_STREAM) !== 0;
      // A trailers-only answer (a gRPC error) stays one HEADERS frame ending the stream.
      stream.respond(forwardable(responseHeaders, false), endStream ? { endStream: true } : { waitForTrailers: true });
    });
    let trailers: http2.OutgoingHttpHeaders = {};
    upstream.on("trailers", (received) => (trailers = forwardable(received, false)));
    stream.on("wantTrailers", () => stream.sendTrailers(trailers));
    upstream.on("data", (chunk: Buffer) => {
      if (!stream.destroyed && !stream.write(chunk)) {
        upstream.pause();
        stream.once("drain", () => upstream.resume());
      }
    });
    upstream.on("end", () => {
      if (!stream.destroyed && !stream.writableEnded && stream.headersSent) stream.end();
    });
    stream.pipe(upstream);
    upstream.on("close", () => {
      if (!stream.destroyed && !stream.writableEnded) stream.close(upstream.rstCode || NGHTTP2_CANCEL);
    });
    upstream.on("error", () => {});
    stream.on("error", () => {});
    stream.on("close", () => {
      if (!upstream.destroyed && !upstream.closed) upstream.close(stream.rstCode || NGHTTP2_CANCEL);
    });
  });

  const h1 = http.createServer((req, res) => {
    const backend = new URL(backends[next()]!);
    const upstream = http.request(
      { host: backend.hostname, port: backend.port, method: req.method, path: req.url, headers: forwardable(req.headers, false) as http.OutgoingHttpHeaders, agent },
      (answer) => {
        res.writeHead(answer.statusCode ?? 502, forwardable(answer.headers, false) as http.OutgoingHttpHeaders);
        answer.pipe(res);
      },
    );
    upstream.on("error", () => res.destroy());
    res.on("close", () => upstream.destroy());
    req.pipe(upstream);
  });

  // One port for both: the first bytes say which protocol the client speaks.
  const front = net.createServer((socket) => {
    socket.once("readable", function sniff() {
      const first: Buffer | null = socket.read();
      if (first === null) {
        socket.once("readable", sniff);
        return;
      }
      socket.unshift(first);
      const isH2 = first.subarray(0, Math.min(first.length, PREFACE.length)).equals(PREFACE.subarray(0, Math.min(first.length, PREFACE.length)));
      (isH2 ? h2 : h1).emit("connection", socket);
    });
    socket.on("error", () => {});
  });
  await new Promise<void>((resolve) => front.listen(0, "127.0.0.1", resolve));
  const port = (front.address() as net.AddressInfo).port;
  const open = new Set<net.Socket>();
  front.on("connection", (socket) => {
    open.add(socket);
    socket.on("close", () => open.delete(socket));
  });
  return {
    port,
    url: `http://127.0.0.1:${port}`,
    sent,
    async close() {
      for (const session of sessions.values()) session.destroy();
      agent.destroy();
      for (const socket of open) socket.destroy();
      await new Promise<void>((resolve) => front.close(() => resolve()));
    },
  };
}
