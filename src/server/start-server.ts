/**
 * Starts keypool's RPC server on its main port (and on the native gRPC port when configured) and
 * returns a handle to stop it. Used by main.ts and by the end-to-end tests alike.
 *
 * Shutdown order: health turns NOT_SERVING (watchers see it), new calls are refused with
 * UNAVAILABLE, the listener stops accepting and sends GOAWAY, open calls and streams are aborted
 * with UNAVAILABLE through connect's shutdownSignal, and connections still open after the grace
 * period are destroyed.
 */
import { setMaxListeners } from "node:events";
import * as fs from "node:fs";
import { Code, ConnectError, type Interceptor } from "@connectrpc/connect";
import { ConfigError } from "../config/config-error";
import { readGroup, SETTINGS, SHUTDOWN_GRACE_MS } from "../config/settings";
import { silentLogger, type Logger } from "../log";
import { Health } from "../../gen/ts/grpc/health/v1/health_pb";
import { errorMappingInterceptor } from "../transport/errors";
import { HealthState, ServingStatus } from "../transport/health";
import type { WatchKeysImpl } from "../transport/key-pool-service";
import type { Durability, PoolApi } from "../domain/pool-api";
import { reclassifyClientMistakes } from "../transport/client-mistakes";
import { serveGrpcWebText } from "../transport/grpc-web-text";
import { encodeStringsWithBuffer } from "../transport/text-encoding";
import { startListener, type Listener, type ListenerOptions } from "./listener";
import { connectionCaps } from "./listener-limits";
import { createNodeHandlers } from "./node-handler";
import { MAX_STREAMS_WAITING_TO_START, STREAM_STARTS_PER_TURN, StreamAdmission } from "./stream-admission";
import type { NativeGrpcListener } from "./native-grpc-listener";
import type { TokenStore } from "../auth/token-store";
import type { KeypoolMetrics } from "../metrics/metrics";
import { APPLICATION_SERVICES, createHttpRoutes, createServiceImpls, routesOf } from "./routes";

export interface ListenConfig {
  host: string;
  port: number;
  /** Both file paths, or absent for cleartext. */
  tls?: { certFile: string; keyFile: string };
  /** KEYPOOL_GRPC_PORT: the native gRPC port (src/server/native-grpc-listener.ts); absent: off. */
  grpcPort?: number;
}

export interface ServerDeps {
  pool: PoolApi;
  logger?: Logger;
  durability?: Durability;
  watchKeys?: WatchKeysImpl;
  /** Feeds RPC timings and serves GET /metrics; absent: no /metrics. */
  metrics?: KeypoolMetrics;
  /** The configured tokens, for the plain HTTP routes (/metrics); RPCs use `interceptors`. */
  tokens?: TokenStore;
  /** Run inside error mapping and the shutdown gate, outside the services (access control). */
  interceptors?: Interceptor[];
  /** Largest request message in bytes (KEYPOOL_MAX_MESSAGE_BYTES); default: connect's own (4 GiB). */
  readMaxBytes?: number;
  /** HTTP/2 and HTTP/1.1 protocol limits and connection caps for the listener (listener-limits.ts). */
  listenerLimits?: ListenerOptions["limits"];
  /** Header, request and idle timeouts (KEYPOOL_*_TIMEOUT); default: the listener's. */
  connectionTimeouts?: ListenerOptions["timeouts"];
  /**
   * How long close() keeps connections open after turning health NOT_SERVING, so that health
   * watchers and checkers see it (default 50 ms). New calls are refused during this time.
   */
  shutdownNoticeMs?: number;
  /** How many streams start per turn and may wait to start (stream-admission.ts); default: its constants. */
  streamAdmission?: { perTurn?: number; maxWaiting?: number };
  /** How long close() lets open connections finish before destroying them (default SHUTDOWN_GRACE_MS). */
  shutdownGraceMs?: number;
}

export interface RunningServer {
  readonly host: string;
  readonly port: number;
  /** http:// or https:// base URL for clients. */
  readonly url: string;
  readonly health: HealthState;
  /** The native gRPC port, when KEYPOOL_GRPC_PORT is set. */
  readonly grpcPort?: number;
  /** http:// or https:// base URL of the native gRPC port, when it is on. */
  readonly grpcUrl?: string;
  /** Graceful stop; resolves when the port is released. Safe to call more than once. */
  close(): Promise<void>;
}

export const SHUTDOWN_MESSAGE = "keypool is shutting down";

function readTlsFile(variable: string, path: string): Buffer {
  try {
    return fs.readFileSync(path);
  } catch (err) {
    throw new ConfigError(variable, `cannot read "${path}": ${(err as NodeJS.ErrnoException).code ?? String(err)}`);
  }
}

/**
 * One log line per connection refused or closed by a cap or timeout: refusals and rapid resets
 * at warn (someone is pushing), timeouts at debug (every client that goes away quietly does it).
 * Refusals come in floods, so they are summarised at most once a second.
 */
function reportConnectionEvent(logger: Logger): NonNullable<ListenerOptions["report"]> {
  let refusedSinceLog = 0;
  let lastRefusalLog = 0;
  return (event, fields) => {
    if (event === "refused") {
      refusedSinceLog++;
      const now = Date.now();
      if (now - lastRefusalLog < 1000) return;
      logger.warn({ ...fields, refused: refusedSinceLog }, "connections refused: over the connection cap");
      refusedSinceLog = 0;
      lastRefusalLog = now;
    } else if (event === "rapid-reset") {
      logger.warn(fields, "connection closed (GOAWAY ENHANCE_YOUR_CALM): it reset too many streams");
    } else {
      logger.debug(fields, event === "idle" ? "idle connection closed" : "request did not arrive in time: stream reset");
    }
  };
}

export async function startServer(config: ListenConfig, deps: ServerDeps): Promise<RunningServer> {
  const logger = deps.logger ?? silentLogger;
  encodeStringsWithBuffer();
  const health = new HealthState(APPLICATION_SERVICES.map((s) => s.typeName));
  const shutdown = new AbortController();
  // Every call in flight listens on the shutdown signal: thousands of open streams are normal.
  setMaxListeners(0, shutdown.signal);
  let closing: Promise<void> | undefined;

  // Health stays answerable while closing, so that checkers read NOT_SERVING rather than errors.
  const shutdownGate: Interceptor = (next) => (req) => {
    const refused = (shutdown.signal.aborted || closing) && req.service.typeName !== Health.typeName;
    if (refused) throw new ConnectError(SHUTDOWN_MESSAGE, Code.Unavailable);
    return next(req);
  };

  // One set of implementations and one interceptor chain for both ports.
  const services = createServiceImpls({
    pool: deps.pool,
    health,
    durability: deps.durability,
    watchKeys: deps.watchKeys,
    metrics: deps.metrics,
  });
  const interceptors = [errorMappingInterceptor(logger), shutdownGate, ...(deps.interceptors ?? [])];
  // One queue for both ports: streams opening on either wait their turn together.
  const admission = new StreamAdmission({
    perTurn: deps.streamAdmission?.perTurn ?? STREAM_STARTS_PER_TURN,
    maxWaiting: deps.streamAdmission?.maxWaiting ?? MAX_STREAMS_WAITING_TO_START,
  });
  const handlers = createNodeHandlers({
    logger,
    admission,
    services,
    // Undecodable requests are the client's mistake: INVALID_ARGUMENT, not connect's INTERNAL.
    // gRPC-Web text mode is translated outside, so that everything inside sees binary gRPC-Web.
    routes: serveGrpcWebText(reclassifyClientMistakes(routesOf(services))),
    httpRoutes: createHttpRoutes({ health, logger, metrics: deps.metrics, tokens: deps.tokens }),
    ...(deps.readMaxBytes !== undefined ? { readMaxBytes: deps.readMaxBytes } : {}),
    shutdownSignal: shutdown.signal,
    interceptors,
    // Plain curl and browsers post Connect JSON without the Connect-Protocol-Version header.
    requireConnectProtocolHeader: false,
    // protobuf's JSON default, not connect's: an unknown enum name ("KEY_STATE_FOO") or field
    // is INVALID_ARGUMENT. Ignored, it left the field at its default, and a typo became another
    // request ("disable" instead of "revoke", "every provider" instead of one).
    jsonOptions: { ignoreUnknownFields: false },
  });

  const tls = config.tls
    ? { cert: readTlsFile(SETTINGS.server.tlsCert.name, config.tls.certFile), key: readTlsFile(SETTINGS.server.tlsKey.name, config.tls.keyFile) }
    : undefined;
  const listener: Listener = await startListener({
    host: config.host,
    port: config.port,
    handler: handlers.request,
    streams: handlers.stream,
    tls,
    limits: deps.listenerLimits,
    timeouts: deps.connectionTimeouts,
    report: reportConnectionEvent(logger),
  });
  let native: NativeGrpcListener | undefined;
  if (config.grpcPort !== undefined) {
    try {
      // grpc-js loads only when the native port is asked for.
      const { startNativeGrpcListener } = await import("./native-grpc-listener");
      native = await startNativeGrpcListener({
        host: config.host,
        port: config.grpcPort,
        services,
        interceptors,
        shutdownSignal: shutdown.signal,
        admission,
        tls,
        readMaxBytes: deps.readMaxBytes,
        http2Limits: deps.listenerLimits?.http2,
        // The same caps and timeouts as the main port, defaults included.
        connections: {
          timeouts: deps.connectionTimeouts ?? readGroup({}, SETTINGS.connections),
          caps: deps.listenerLimits?.connections ?? connectionCaps(readGroup({}, SETTINGS.limits)),
          report: reportConnectionEvent(logger),
        },
        onAbandoned: (procedure, err) =>
          logger.debug({ procedure, message: err instanceof Error ? err.message : String(err) }, "response abandoned: the client went away"),
      });
    } catch (err) {
      await listener.close(0);
      throw err;
    }
  }
  health.setAll(ServingStatus.SERVING);
  // A server that cannot save acknowledges no change: load balancers and checkers should know.
  const stopWatchingSaving = deps.durability?.watchSaving?.((saving) => {
    if (closing) return;
    health.setAll(saving ? ServingStatus.SERVING : ServingStatus.NOT_SERVING);
    const where = deps.durability?.savedTo ?? "the state file";
    if (!saving) logger.error(`health is NOT_SERVING: changes cannot be saved to ${where}`);
    else logger.info(`health is SERVING again: changes are saved to ${where}`);
  });

  const hostForUrl = config.host.includes(":") ? `[${config.host}]` : config.host;
  const scheme = tls ? "https" : "http";
  return {
    host: config.host,
    port: listener.port,
    url: `${scheme}://${hostForUrl}:${listener.port}`,
    ...(native ? { grpcPort: native.port, grpcUrl: `${scheme}://${hostForUrl}:${native.port}` } : {}),
    health,
    close() {
      closing ??= (async () => {
        stopWatchingSaving?.();
        health.setAll(ServingStatus.NOT_SERVING);
        // Let health watchers receive NOT_SERVING before their streams are ended.
        await new Promise((resolve) => setTimeout(resolve, deps.shutdownNoticeMs ?? 50));
        listener.stopAccepting();
        const graceMs = deps.shutdownGraceMs ?? SHUTDOWN_GRACE_MS;
        const nativeClosed = native?.close(graceMs);
        shutdown.abort(new ConnectError(SHUTDOWN_MESSAGE, Code.Unavailable));
        await Promise.all([listener.close(graceMs), nativeClosed]);
      })();
      return closing;
    },
  };
}
