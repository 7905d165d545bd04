/**
 * Mounts a Connect router on node's http/http2 request events. It does what connect-node's
 * connectNodeAdapter does, with one difference that matters in production: a handler that fails
 * after the response can no longer be written (the client went away mid-stream) is logged through
 * pino at debug level, instead of connect-node's console.error on stderr for every disconnect.
 * Given the mounted services, it also hands the listener the path that serves gRPC server streams
 * over HTTP/2 without node's compatibility layer (grpc-server-streams.ts).
 */
import * as http2 from "node:http2";
import { Code, ConnectError, createConnectRouter, type ConnectRouter, type ConnectRouterOptions } from "@connectrpc/connect";
import {
  compressionBrotli,
  compressionGzip,
  universalRequestFromNodeRequest,
  universalResponseToNodeResponse,
} from "@connectrpc/connect-node";
import type { Logger } from "../log";
import type { Http2StreamTaker, RequestHandler } from "./listener";
import { createGrpcServerStreams } from "./grpc-server-streams";
import type { MountedService } from "./routes";
import type { StreamAdmission } from "./stream-admission";

export interface NodeHandlerOptions extends ConnectRouterOptions {
  routes: (router: ConnectRouter) => void;
  /** Plain HTTP endpoints by exact path (routes.ts), tried before the RPCs. */
  httpRoutes?: ReadonlyMap<string, RequestHandler>;
  logger: Logger;
  /** Starts streaming calls a few per turn (stream-admission.ts); absent: each at once. */
  admission?: StreamAdmission;
  /**
   * The implementations `routes` mounts: their gRPC server streams over HTTP/2 then run on a
   * leaner path than connect-node's (grpc-server-streams.ts); absent: every call through connect.
   */
  services?: MountedService[];
}

export interface NodeHandlers {
  /** node's request event (HTTP/1.1, and HTTP/2 through node's compatibility layer). */
  request: RequestHandler;
  /** Takes the HTTP/2 streams it serves itself before node's compatibility layer sees them. */
  stream?: Http2StreamTaker;
}

export function createNodeHandlers(options: NodeHandlerOptions): NodeHandlers {
  const { routes, httpRoutes, logger, admission, services, ...routerOptions } = options;
  // connect-node's defaults: requests may come gzip- or brotli-compressed.
  const acceptCompression = [compressionGzip, compressionBrotli];
  const router = createConnectRouter({ acceptCompression, ...routerOptions });
  routes(router);
  const handlers = new Map(router.handlers.map((h) => [h.requestPath, h]));
  const stream = services
    ? createGrpcServerStreams({
        services,
        interceptors: routerOptions.interceptors ?? [],
        shutdownSignal: routerOptions.shutdownSignal ?? new AbortController().signal,
        acceptCompression: routerOptions.acceptCompression ?? acceptCompression,
        compressMinBytes: routerOptions.compressMinBytes,
        readMaxBytes: routerOptions.readMaxBytes,
        binaryOptions: routerOptions.binaryOptions,
        connectHandler: (path) => handlers.get(path),
        admission,
        onAbandoned: (procedure, reason) =>
          logger.debug({ procedure, message: reason instanceof Error ? reason.message : String(reason) }, "response abandoned: the client went away"),
      })
    : undefined;

  const request: RequestHandler = (req, res) => {
    const path = req.url?.split("?", 2)[0] ?? "";
    const httpRoute = httpRoutes?.get(path);
    if (httpRoute) {
      httpRoute(req, res);
      return;
    }
    const handler = handlers.get(path);
    if (!handler) {
      res.writeHead(404);
      res.end();
      return;
    }
    const call = () => {
      if (handler.method.methodKind === "server_streaming") writeOneMessageAtATime(res);
      const uReq = universalRequestFromNodeRequest(req, res, undefined, undefined);
      return handler(uReq).then((uRes) => universalResponseToNodeResponse(uRes, res));
    };
    if (handler.method.methodKind === "unary" || !admission) {
      void call().catch(failed);
      return;
    }
    const admitted = admission.admit(
      () => void call().catch(failed),
      () => gone(res),
    );
    if (!admitted) refuseStream(res);

    function failed(reason: unknown): void {
      if (ConnectError.from(reason).code === Code.Aborted) return;
      const procedure = `${handler!.service.typeName}/${handler!.method.name}`;
      const message = reason instanceof Error ? reason.message : String(reason);
      // The usual cause is a client that cancelled or disconnected while its response was
      // being written: nothing to answer, nothing lost. Anything else deserves attention.
      if (res.destroyed || res.writableEnded) {
        logger.debug({ procedure, message }, "response abandoned: the client went away");
      } else {
        logger.warn({ procedure, message }, "response could not be completed");
      }
    }
  };
  return { request, stream };
}

/** Whether the client went away (a reset stream, a closed connection). */
function gone(res: Parameters<RequestHandler>[1]): boolean {
  if ("stream" in res && res.stream) return res.stream.destroyed;
  return res.destroyed;
}

/**
 * A stream refused before its handler ran (the queue of streams waiting to start is full):
 * HTTP/2 REFUSED_STREAM, which tells a gRPC client that nothing was processed and it may retry
 * (it sees UNAVAILABLE); over HTTP/1.1, 503.
 */
function refuseStream(res: Parameters<RequestHandler>[1]): void {
  if ("stream" in res && res.stream) {
    res.stream.close(http2.constants.NGHTTP2_REFUSED_STREAM);
    return;
  }
  res.writeHead(503, { "retry-after": "1", "content-type": "text/plain" });
  res.end("too many streams are starting at once; retry\n");
}

/**
 * connect-node makes a stream's next message as soon as the previous one is buffered, and node
 * buffers up to 16 KiB per stream: for WatchKeys that is a hundred stale statuses a slow client
 * must read before it sees the latest, which the watch hub could otherwise have coalesced. Here a
 * write reports "buffer full" until node has handed it to the connection, and signals 'drain'
 * then, so connect asks for the next message only once the previous one has left. A client that
 * stops reading is then held back by HTTP/2 flow control alone, and the hub keeps one pending
 * status per key for it.
 */
function writeOneMessageAtATime(res: Parameters<RequestHandler>[1]): void {
  const write = res.write.bind(res) as (chunk: unknown, encoding: BufferEncoding, callback: (err?: Error | null) => void) => boolean;
  (res as { write: unknown }).write = (chunk: unknown, encoding: BufferEncoding, callback?: (err?: Error | null) => void) => {
    write(chunk, encoding, (err) => {
      callback?.(err);
      if (!err) res.emit("drain");
    });
    return false;
  };
}
