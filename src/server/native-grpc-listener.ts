/**
 * The native gRPC port (KEYPOOL_GRPC_PORT): plain gRPC over HTTP/2, cleartext or TLS, served by
 * @grpc/grpc-js, which moves gRPC calls several times faster than connect-node's HTTP/2 path.
 * It mounts the main port's service implementations through src/server/grpc-js-adapter.ts, so
 * the only difference a client can see is speed.
 */
import * as http2 from "node:http2";
import type * as net from "node:net";
import * as grpc from "@grpc/grpc-js";
import type { Interceptor } from "@connectrpc/connect";
import { truncated } from "../domain/echo";
import { ERROR_MESSAGE_LIMIT_BYTES } from "../transport/client-mistakes";
import { ConnectionGuard, type ConnectionCaps, type ConnectionTimeouts, type GuardReport } from "./connection-guard";
import { grpcJsDefinition, grpcJsImplementation } from "./grpc-js-adapter";
import { ShutdownGrace } from "./shutdown-grace";
import type { TlsMaterial } from "./listener";
import type { MountedService } from "./routes";
import type { StreamAdmission } from "./stream-admission";

export interface NativeGrpcListenerOptions {
  host: string;
  port: number;
  services: MountedService[];
  interceptors: Interceptor[];
  shutdownSignal: AbortSignal;
  tls?: TlsMaterial;
  /** Largest request message in bytes; default: no limit of its own (as connect's 4 GiB). */
  readMaxBytes?: number;
  /** The main port's HTTP/2 options (src/auth/access-limits.ts http2ServerLimits). */
  http2Limits?: http2.ServerOptions;
  onAbandoned?: (procedure: string, err: unknown) => void;
  /** Starts streams a few per turn (stream-admission.ts); shared with the main port. */
  admission?: StreamAdmission;
  /** The main port's connection caps and timeouts (connection-guard.ts), from the same settings. */
  connections: { timeouts: ConnectionTimeouts; caps: ConnectionCaps; report?: GuardReport };
}

export interface NativeGrpcListener {
  readonly port: number;
  /** Stops accepting, sends GOAWAY, waits `graceMs` for open calls, then closes what is left. */
  close(graceMs: number): Promise<void>;
}

/**
 * grpc-js words a few transport errors its own way, and calls a request it cannot decompress a
 * server fault (INTERNAL). The main port gives connect's words, and INVALID_ARGUMENT for what is
 * the client's mistake; these statuses are rewritten as they leave, so that both ports answer
 * alike.
 */
const TRANSPORT_STATUSES: { code: grpc.status; pattern: RegExp; rewrite: (m: RegExpExecArray) => Partial<grpc.StatusObject> }[] = [
  {
    code: grpc.status.RESOURCE_EXHAUSTED,
    pattern: /^Received message larger than max \((\d+) vs (\d+)\)$/,
    rewrite: (m) => ({ details: `message size ${m[1]} is larger than configured readMaxBytes ${m[2]}` }),
  },
  {
    code: grpc.status.RESOURCE_EXHAUSTED,
    pattern: /^Received message that decompresses to a size larger than (\d+)$/,
    rewrite: (m) => ({ details: `message is larger than configured readMaxBytes ${m[1]} after decompression` }),
  },
  {
    code: grpc.status.INTERNAL,
    pattern: /^Failed to decompress message$/,
    rewrite: () => ({ code: grpc.status.INVALID_ARGUMENT, details: "decompression failed" }),
  },
  { code: grpc.status.DEADLINE_EXCEEDED, pattern: /^Deadline exceeded$/, rewrite: () => ({ details: "the operation timed out" }) },
];

/**
 * grpc-js sends those statuses from the call object itself (its decoder, decompressor and
 * deadline timer), past any interceptor's responder, so the rewrite sits on the call's own
 * sendStatus. It changes no call but those of this server, and adds no layer to the call.
 *
 * Every call gets the same function, which finds its call in `this`, not a closure of its own:
 * a closure made per call and stored on the call keeps that call's transport objects (its
 * HTTP/2 stream, headers, buffers) alive through the young-generation collections that follow
 * it, and the collector then copies and promotes every call's objects instead of dropping them
 * (BENCHMARKS.md §5, "What the collector copies per call").
 */
const sameWordsAsMainPort: grpc.ServerInterceptor = (_method, call) => {
  call.sendStatus = sendStatusInMainPortWords;
  // The type asks for an intercepting wrapper; the call itself is one, with nothing to add.
  return call as grpc.ServerInterceptingCall;
};

type SentStatus = Parameters<grpc.ServerInterceptingCall["sendStatus"]>[0];

/** grpc-js's own sendStatus (the call's class's), with the status in the main port's words. */
function sendStatusInMainPortWords(this: grpc.ServerInterceptingCall, status: SentStatus): void {
  const grpcJsCall = Object.getPrototypeOf(this) as grpc.ServerInterceptingCall;
  // An OK status (every successful call) goes out as it came: nothing to rewrite or bound.
  grpcJsCall.sendStatus.call(this, status.code === grpc.status.OK ? status : inMainPortWords(status));
}

function inMainPortWords(status: SentStatus): SentStatus {
  for (const { code, pattern, rewrite } of TRANSPORT_STATUSES) {
    const match = status.code === code ? pattern.exec(status.details ?? "") : null;
    if (match) status = { ...status, ...rewrite(match) };
  }
  // The main port's bound on every error text (src/transport/client-mistakes.ts).
  return status.details === undefined ? status : { ...status, details: truncated(status.details, ERROR_MESSAGE_LIMIT_BYTES) };
}

/**
 * The content types of gRPC with protobuf, as connect's gRPC handler reads them. grpc-js takes
 * anything starting with application/grpc; the main port answers 415 to the rest (such as
 * application/grpc+xml), and so does this one. (The main port also takes application/grpc+json;
 * this port speaks binary protobuf only.)
 */
const GRPC_PROTO_CONTENT_TYPE = /^application\/grpc(\+proto)?$/i;

function refuseOtherContentTypes(server: grpc.Server): void {
  const internals = server as unknown as {
    _verifyContentType?: (stream: http2.ServerHttp2Stream, headers: http2.IncomingHttpHeaders) => boolean;
  };
  if (typeof internals._verifyContentType !== "function") {
    throw new Error("@grpc/grpc-js no longer checks content types where this server expects");
  }
  internals._verifyContentType = (stream, headers) => {
    const contentType = headers["content-type"];
    if (typeof contentType === "string" && GRPC_PROTO_CONTENT_TYPE.test(contentType)) return true;
    stream.respond({ ":status": 415 }, { endStream: true });
    return false;
  };
}

export async function startNativeGrpcListener(options: NativeGrpcListenerOptions): Promise<NativeGrpcListener> {
  const server = new grpc.Server({
    "grpc.max_receive_message_length": options.readMaxBytes ?? -1,
    "grpc.max_send_message_length": -1,
    // channelz (call counters and timestamps per call and per session) is read by nothing here.
    "grpc.enable_channelz": 0,
    // KEYPOOL_IDLE_TIMEOUT: grpc-js's own idle timeout (GOAWAY once no call has been open this long).
    "grpc.max_connection_idle_ms": options.connections.timeouts.idleMs,
    ...(options.http2Limits?.settings?.maxConcurrentStreams !== undefined
      ? { "grpc.max_concurrent_streams": options.http2Limits.settings.maxConcurrentStreams }
      : {}),
    interceptors: [sameWordsAsMainPort],
  });
  applyHttp2Limits(server, options.http2Limits);
  refuseOtherContentTypes(server);
  for (const mounted of options.services) {
    server.addService(
      grpcJsDefinition(mounted),
      grpcJsImplementation(mounted, {
        interceptors: options.interceptors,
        shutdownSignal: options.shutdownSignal,
        onAbandoned: options.onAbandoned,
      }),
    );
  }
  const credentials = options.tls
    ? grpc.ServerCredentials.createSsl(null, [{ cert_chain: toBuffer(options.tls.cert), private_key: toBuffer(options.tls.key) }], false)
    : grpc.ServerCredentials.createInsecure();
  const host = options.host.includes(":") ? `[${options.host}]` : options.host;
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync(`${host}:${options.port}`, credentials, (err, bound) => (err ? reject(err) : resolve(bound))),
  );
  guardConnections(server, new ConnectionGuard(options.connections.timeouts, options.connections.caps, options.connections.report));
  if (options.admission) admitStreamsFirst(server, options.admission, streamingPaths(options.services));

  let closing: Promise<void> | undefined;
  return {
    port,
    close(graceMs: number) {
      closing ??= (async () => {
        let shutDown = false;
        const finished = new Promise<void>((resolve) =>
          server.tryShutdown(() => {
            shutDown = true;
            resolve();
          }),
        );
        const grace = new ShutdownGrace(graceMs);
        while (!shutDown && !grace.over) await Promise.race([grace.tick(), finished]);
        if (!shutDown) server.forceShutdown();
        await finished;
      })();
      return closing;
    },
  };
}

function toBuffer(material: string | Buffer): Buffer {
  return typeof material === "string" ? Buffer.from(material) : material;
}

/**
 * grpc-js takes HTTP/2 settings only through a few channel options; the rest of the main port's
 * HTTP/2 limits (header list size and pairs, invalid frames, rejected streams) go into the
 * options it creates its HTTP/2 server with. test/e2e/access-limits.test.ts checks that they
 * take effect.
 */
function applyHttp2Limits(server: grpc.Server, limits: http2.ServerOptions | undefined): void {
  if (!limits) return;
  const common = (server as unknown as { commonServerOptions?: http2.ServerOptions }).commonServerOptions;
  if (!common) throw new Error("@grpc/grpc-js no longer exposes its HTTP/2 server options");
  const { settings, ...rest } = limits;
  Object.assign(common, rest);
  common.settings = { ...common.settings, ...settings };
}

/** The HTTP/2 servers grpc-js bound (after bindAsync): a field of its own, checked to be there. */
function boundHttp2Servers(server: grpc.Server): Iterable<net.Server> {
  const bound = (server as unknown as { http2Servers?: Map<net.Server, unknown> }).http2Servers;
  if (!bound) throw new Error("@grpc/grpc-js no longer exposes its HTTP/2 servers");
  return bound.keys();
}

/**
 * grpc-js has no cap on connections, no request timeout and no limit on stream resets of its
 * own: the main port's ConnectionGuard watches the HTTP/2 servers grpc-js bound (caps per address
 * and in total, request timeout, reset budget; the idle timeout is grpc-js's). A connection that
 * sends nothing gets a session at once on this port (no protocol to sniff), so the idle timeout,
 * not the headers timeout, closes it.
 */
function guardConnections(server: grpc.Server, guard: ConnectionGuard): void {
  for (const http2Server of boundHttp2Servers(server)) {
    http2Server.maxConnections = guard.caps.maxConnections;
    http2Server.on("drop", (data?: { remoteAddress?: string }) =>
      guard.report("refused", { remoteAddress: data?.remoteAddress, limit: guard.caps.maxConnections, cap: "total" }),
    );
    // Before grpc-js's own listener, so that a connection past a cap never becomes a session.
    http2Server.prependListener("connection", (socket: net.Socket) => guard.admit(socket));
    http2Server.on("session", (session: http2.ServerHttp2Session) => guard.watchSession(session, { idle: false }));
  }
}

/** The paths of the streaming methods (server and bidi streams), which start through the admission queue. */
function streamingPaths(services: MountedService[]): Set<string> {
  const paths = new Set<string>();
  for (const { service } of services) {
    for (const method of service.methods) {
      if (method.methodKind !== "unary") paths.add(`/${service.typeName}/${method.name}`);
    }
  }
  return paths;
}

/** The status of a stream refused before grpc-js saw it: retryable (a gRPC client retries UNAVAILABLE). */
const STREAMS_REFUSED = "too many streams are starting at once; retry";

function ignore(): void {}

/**
 * grpc-js sets a call up the moment its stream's HEADERS arrive: the call objects, its metadata,
 * its decoder, and, once the request has arrived, the request's decoding and the handler. A
 * client that opens a hundred streams at once sends them in one read, and all of that would run
 * in the turn of that read, before any of it reaches the adapter's handler: the calls arriving
 * meanwhile (a Lease, a GetLockoutPeriod) would wait behind a hundred set-ups. So grpc-js's own
 * 'stream' listener is moved behind the admission queue (stream-admission.ts) for the streaming
 * methods: a new stream only joins the queue, and grpc-js sees it in the turn it is started.
 * Until then its request waits in the stream's buffer. Unary calls go to grpc-js at once.
 */
function admitStreamsFirst(server: grpc.Server, admission: StreamAdmission, paths: Set<string>): void {
  for (const http2Server of boundHttp2Servers(server)) {
    const listeners = http2Server.listeners("stream");
    if (listeners.length !== 1) throw new Error(`@grpc/grpc-js's HTTP/2 server has ${listeners.length} stream listeners where keypool expects its one`);
    const grpcJs = listeners[0] as (stream: http2.ServerHttp2Stream, headers: http2.IncomingHttpHeaders, ...rest: unknown[]) => void;
    http2Server.removeListener("stream", grpcJs);
    http2Server.on("stream", (stream: http2.ServerHttp2Stream, headers: http2.IncomingHttpHeaders, ...rest: unknown[]) => {
      const path = headers[":path"];
      if (typeof path !== "string" || !paths.has(path)) return grpcJs.call(http2Server, stream, headers, ...rest);
      // A reset while the stream waits emits 'error'; grpc-js listens for it once it has the stream.
      stream.on("error", ignore);
      const admitted = admission.admit(
        () => {
          stream.off("error", ignore);
          // A request without a byte of body has ended while it waited ('end' goes out at the
          // end of the body whether anyone reads or not): grpc-js, which learns of the request's
          // end only from that event, hears it now, and answers as for any empty request.
          const heardEnd = stream.readableEnded ? stream.listeners("end") : undefined;
          grpcJs.call(http2Server, stream, headers, ...rest);
          if (heardEnd) for (const listener of stream.listeners("end")) if (!heardEnd.includes(listener)) listener.call(stream);
        },
        () => stream.destroyed,
      );
      if (!admitted) refuse(stream);
    });
  }
}

/** A trailers-only UNAVAILABLE, as grpc-js would send it for a call its handler refused. */
function refuse(stream: http2.ServerHttp2Stream): void {
  if (stream.destroyed || stream.closed) return;
  stream.respond(
    {
      ":status": 200,
      "content-type": "application/grpc+proto",
      "grpc-status": String(grpc.status.UNAVAILABLE),
      "grpc-message": encodeURIComponent(STREAMS_REFUSED),
    },
    { endStream: true },
  );
}
