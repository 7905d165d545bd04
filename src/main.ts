#!/usr/bin/env node
/**
 * keypool's entry point: read the configuration, build the pool, serve it, and stop cleanly on
 * SIGTERM, SIGINT or SIGHUP (health NOT_SERVING, new calls refused, open streams ended with
 * UNAVAILABLE, state written, exit within 5 s). `--help` and `--version` answer and exit.
 */
import { loadAccess, type Access } from "./auth/access";
import { isLoopbackHost } from "./auth/listen-policy";
import { helpText, parseServerArgs } from "./cli/server-args";
import { KeyChecker } from "./checker/key-checker";
import type { UpstreamUrls } from "./checker/upstream-check";
import { isConfigError } from "./config/config-error";
import { loadKeySpecs } from "./config/key-sources";
import { loadFamilyConfig, type FamilyConfig } from "./config/model-families-config";
import { EXIT_DEADLINE_MS, SETTINGS, allSettings, readSettings, tlsFiles, unknownSettings, type Settings } from "./config/settings";
import type { CheckedPool } from "./domain/pool-api";
import type { KeySpec } from "./domain/types";
import { systemClock } from "./domain/clock";
import { KeyPool } from "./domain/key-pool";
import type { PoolMirror } from "./redis/pool-mirror";
import type { RedisPool } from "./redis/redis-pool";
import { createLogger, type Logger } from "./log";
import { createServerMetrics } from "./metrics/server-metrics";
import { listenerLimits } from "./server/listener-limits";
import { startServer, type RunningServer } from "./server/start-server";
import { collectStartUpGarbage } from "./start-up-heap";
import type { DurableState } from "./storage/durable-state";
import { isRedisUrl, parseRedisUrl, type RedisTarget } from "./redis/redis-url";
import type { RedisState } from "./redis/redis-state";
import { requestLogInterceptor } from "./transport/request-log";
import { createWatchKeys, encodedStatusBytes } from "./transport/watch-keys";
import { VERSION } from "./version";
import { WatchHub } from "./watch/watch-hub";

/** How often keypool checks, when an npm script started it, that npm is still there. */
const LAUNCHER_CHECK_MS = 250;
/** Every signal that stops keypool; each one drains the same way. */
const STOP_SIGNALS: readonly NodeJS.Signals[] = ["SIGTERM", "SIGINT", "SIGHUP"];

interface StartupConfig {
  settings: Settings;
  /** KEYPOOL_* variables no setting names: warned about once the logger exists. */
  unknown: { name: string; nearest: string }[];
  families: FamilyConfig;
  keys: KeySpec[];
  /** Tokens, interceptors, and the loopback rule (src/auth/). */
  access: Access;
  /** KEYPOOL_STATE=redis://...: the pool is kept in Redis (src/redis/); otherwise a file or memory. */
  redis?: RedisTarget;
}

/** Every setting, checked before anything starts; an error names the variable or file at fault. */
function loadStartupConfig(env: NodeJS.ProcessEnv): StartupConfig {
  const settings = readSettings(env);
  const families = loadFamilyConfig(settings.families);
  return {
    settings,
    unknown: unknownSettings(env),
    families,
    keys: loadKeySpecs(settings.keys, undefined, families.families),
    access: loadAccess(settings),
    redis: isRedisUrl(settings.storage.state) ? parseRedisUrl(settings.storage.state, SETTINGS.storage.state.name) : undefined,
  };
}

/** The pool and what keeps it: an in-process KeyPool with its file (or memory), or the pool in Redis. */
interface Backend {
  pool: KeyPool | RedisPool;
  /** The change feed and synchronous reads: the pool itself, or the Redis pool's read model. */
  watched: KeyPool | PoolMirror;
  checked: CheckedPool;
  /** KEYPOOL_STATE as the start-up line shows it (never a password). */
  shown: string;
}

async function run({ settings, unknown, families, keys, access, redis }: StartupConfig, logger: Logger): Promise<void> {
  for (const { name, nearest } of unknown) {
    logger.warn({ variable: name, nearest }, `${name} is not a keypool setting and is ignored; did you mean ${nearest}?`);
  }
  logger[access.listen.level](access.listen.message);

  let server: RunningServer | undefined;
  let state: DurableState | undefined;
  let redisState: RedisState | undefined;
  let backend: Backend;
  if (redis) {
    // Connects, checks Redis (a failure names KEYPOOL_STATE and stops the start), merges the
    // configured keys into the pool kept there, and follows its changes.
    // Each backend's modules (ioredis; better-sqlite3) are loaded only when it is the one chosen.
    const { openRedisState } = await import("./redis/redis-state");
    redisState = await openRedisState({
      redis: { target: redis, caFile: settings.redis.caFile, timeoutMs: settings.redis.timeoutMs },
      prefix: settings.redis.prefix,
      clock: systemClock,
      tunables: settings.pool,
      families: families.families,
      allowedFamilies: families.allowedFamilies,
      configured: keys,
      logger: logger.child({ component: "redis" }),
    });
    const { pool } = redisState;
    const mirror = pool.mirror;
    backend = {
      pool,
      watched: mirror,
      checked: {
        changes: mirror.changes,
        listKeys: (filter) => mirror.listKeys(filter),
        getKey: (keyHash) => mirror.getKey(keyHash),
        markForCheck: (keyHashes) => pool.markForCheck(keyHashes),
        checkSubject: (keyHash) => pool.checkSubject(keyHash),
        applyFinding: (subject, finding) => pool.applyFinding(subject, finding),
      },
      shown: redisState.shown,
    };
  } else {
    const pool = new KeyPool({
      clock: systemClock,
      families: families.families,
      allowedFamilies: families.allowedFamilies,
      ...settings.pool,
    });
    backend = { pool, watched: pool, checked: pool, shown: settings.storage.state };
  }
  const { pool } = backend;
  // Made once the pool is loaded (below): a change feed nobody follows yet publishes nothing, so
  // a large start makes no event per key.
  let hub: WatchHub | undefined;

  // The census is taken at its first use (src/metrics/key-census.ts), whatever the pool holds by then.
  const served = createServerMetrics({
    pool,
    census: backend.watched,
    clock: systemClock,
    watchers: () => hub?.subscriberCount ?? 0,
    storeQueue: () => state?.queued ?? 0,
  });
  let checker: KeyChecker | undefined;
  let stopping = false;
  const stop = (why: { signal: NodeJS.Signals } | { reason: string }) => {
    if (stopping) return;
    stopping = true;
    logger.info(why, "shutting down");
    setTimeout(() => {
      logger.error("shutdown took too long; exiting anyway");
      process.exit(1);
    }, EXIT_DEADLINE_MS).unref();
    void (async () => {
      try {
        // Checks in flight are cancelled: a slow upstream never holds the exit.
        checker?.close();
        await server?.close();
        hub?.close();
        await pool.close();
        // Last: writes the soft state (last used, holds) too, and folds the WAL into the file.
        state?.close();
        await redisState?.close();
        logger.info("stopped");
        process.exit(0);
      } catch (err) {
        logger.error({ errName: (err as Error).name, message: (err as Error).message }, "error while shutting down");
        process.exit(1);
      }
    })();
  };
  if (pool instanceof KeyPool) {
    // Configured and stored keys, merged by hash (src/storage/restore.ts). A state file that
    // cannot be used throws here, naming the file: the start stops rather than run with an empty pool.
    const { openDurableState } = await import("./storage/durable-state");
    state = openDurableState({
      location: settings.storage.state,
      pool,
      configured: keys,
      clock: systemClock,
      logger,
      onCommitted: (seconds) => served.metrics.committed(seconds),
    });
    backend.shown = state.location;
  }

  hub = new WatchHub(backend.watched, {
    clock: systemClock,
    coalesceMs: settings.watch.coalesceMs,
    heartbeatMs: settings.watch.heartbeatMs,
    maxSubscribers: settings.watch.maxWatchers,
    measure: encodedStatusBytes,
  });

  for (const signal of STOP_SIGNALS) process.on(signal, () => stop({ signal }));
  followLauncher(() => stop({ reason: "npm, which started keypool, has exited" }));

  // The pool is loaded: its start-up garbage goes before the first call (src/start-up-heap.ts).
  collectStartUpGarbage();
  server = await startServer(
    { host: settings.server.host, port: settings.server.port, tls: tlsFiles(settings.server), grpcPort: settings.server.grpcPort },
    {
      pool: served.pool,
      metrics: served.metrics,
      tokens: access.tokens,
      logger,
      durability: state ?? redisState?.durability,
      watchKeys: createWatchKeys(hub),
      // The request log sees every call, refused ones too; it never logs headers or messages.
      interceptors: [requestLogInterceptor(logger), ...access.interceptors],
      readMaxBytes: settings.limits.maxMessageBytes,
      listenerLimits: listenerLimits(settings.limits),
      connectionTimeouts: settings.connections,
    },
  );
  const tls = Boolean(tlsFiles(settings.server));
  logger.info(
    {
      version: VERSION,
      pid: process.pid,
      host: server.host,
      port: server.port,
      url: server.url,
      // The native gRPC port (grpc-js), when KEYPOOL_GRPC_PORT opens one.
      grpcPort: server.grpcPort,
      protocols: ["grpc", "grpc-web", "connect"],
      http: tls ? ["h2", "http/1.1"] : ["h2c", "http/1.1"],
      tls,
      health: `${server.url}/healthz`,
      state: backend.shown,
      ...(redisState ? { redisVersion: redisState.connection.version, redisPrefix: settings.redis.prefix } : {}),
      keys: pool.countByProvider(),
      auth: authMode(access, settings.server.host),
    },
    "keypool listening",
  );
  if (stopping) return;
  // After the server listens: the checker never delays serving (docs/checker.md).
  const started = await startChecker(settings.checker, families, backend.checked, logger);
  if (stopping) started?.close();
  else checker = started;
}

async function startChecker(settings: Settings["checker"], families: FamilyConfig, pool: CheckedPool, logger: Logger): Promise<KeyChecker | undefined> {
  if (!settings.enabled) {
    logger.info("key checker off (KEYPOOL_CHECK_KEYS=false): keys are taken on faith");
    return undefined;
  }
  // The providers' checks (their signing and token libraries) load after the server listens.
  const { CHECKED_PROVIDERS, upstreamCheck } = await import("./checker/upstream-check");
  const checker = new KeyChecker({
    pool,
    clock: systemClock,
    logger: logger.child({ component: "checker" }),
    concurrency: settings.concurrency,
    periodMs: settings.periodMs,
    intervalMs: settings.intervalMs,
    checks: CHECKED_PROVIDERS,
    check: upstreamCheck({
      ...upstreamUrls(settings),
      timeoutMs: settings.timeoutMs,
      families: families.families,
    }),
  });
  checker.start();
  logger.info(
    {
      ...upstreamUrls(settings),
      concurrency: settings.concurrency,
      periodMs: settings.periodMs,
    },
    "key checker started",
  );
  return checker;
}

function upstreamUrls(settings: Settings["checker"]): UpstreamUrls {
  const { openaiBaseUrl, anthropicBaseUrl, googleAiBaseUrl, mistralBaseUrl, azureBaseUrl, bedrockBaseUrl, vertexBaseUrl, vertexTokenUrl } = settings;
  return { openaiBaseUrl, anthropicBaseUrl, googleAiBaseUrl, mistralBaseUrl, azureBaseUrl, bedrockBaseUrl, vertexBaseUrl, vertexTokenUrl };
}

/** How calls are authenticated, as the start-up line says it. */
function authMode(access: Access, host: string): string {
  if (access.tokens.enabled) return `bearer tokens (${access.tokens.size})`;
  return isLoopbackHost(host) ? "none (loopback only)" : "none (KEYPOOL_ALLOW_NO_AUTH=1)";
}

/**
 * npm passes SIGTERM and SIGINT on to the script it runs, but not SIGHUP: `kill -HUP` of
 * `npm start` ends npm and would leave keypool running without it. So when an npm script started
 * keypool, keypool stops as soon as its parent (npm) is gone. The bin run directly (systemd,
 * containers, `nohup`) is left alone.
 */
function followLauncher(stop: () => void): void {
  if (!process.env.npm_lifecycle_event) return;
  const launcher = process.ppid;
  setInterval(() => {
    if (process.ppid !== launcher) stop();
  }, LAUNCHER_CHECK_MS).unref();
}

function main(): void {
  const command = parseServerArgs(process.argv.slice(2));
  switch (command.kind) {
    case "help":
      process.stdout.write(helpText(VERSION, allSettings()));
      return;
    case "version":
      process.stdout.write(`keypool ${VERSION}\n`);
      return;
    case "usage-error":
      process.stderr.write(`keypool: ${command.message}\n`);
      process.exit(2);
    case "serve":
      break;
  }
  let config: StartupConfig;
  try {
    config = loadStartupConfig(process.env);
  } catch (err) {
    if (isConfigError(err)) {
      process.stderr.write(`keypool: configuration error: ${err.message}\n`);
      process.exit(2);
    }
    throw err;
  }
  const logger = createLogger({ level: config.settings.server.logLevel });
  run(config, logger).catch((err: unknown) => {
    const message = err instanceof Error ? err.message : String(err);
    logger.fatal({ errName: err instanceof Error ? err.name : typeof err, message }, "keypool failed to start");
    process.stderr.write(`keypool: ${message}\n`);
    process.exit(1);
  });
}

main();
