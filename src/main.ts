#!/usr/bin/env node
/**
 * keypool's entry point: read the configuration, build the pool, serve it, and stop cleanly on
 * SIGTERM, SIGINT or SIGHUP (health NOT_SERVING, new calls refused, open streams ended with
 * UNAVAILABLE, state written, exit within 5 s). `--help` and `--version` answer and exit.
 */
import { loadAccess, type Access } from "./auth/access";
import { isLoopbackHost } from "./auth/listen-policy";
import { helpText, parseServerArgs } from "./cli/server-args";
import { isConfigError } from "./config/config-error";
import { loadKeySpecs } from "./config/key-sources";
import { loadFamilyConfig, type FamilyConfig } from "./config/model-families-config";
import { SERVER_SETTINGS, loadServerConfig, type ServerConfig } from "./config/server-config";
import type { KeySpec } from "./domain/types";
import { systemClock } from "./domain/clock";
import { KeyPool } from "./domain/key-pool";
import { createLogger, type Logger } from "./log";
import { startServer, type RunningServer } from "./server/start-server";
import { openDurableState, type DurableState } from "./storage/durable-state";
import { DEFAULT_STATE_PATH } from "./storage/sqlite-store";
import { requestLogInterceptor } from "./transport/request-log";
import { createWatchKeys } from "./transport/watch-keys";
import { VERSION } from "./version";
import { WatchHub } from "./watch/watch-hub";

/** The process must be gone this long after a stop signal, whatever is still open. */
const EXIT_DEADLINE_MS = 4500;
/** Open connections get this long to finish after shutdown begins. */
const SHUTDOWN_GRACE_MS = 2000;
/** How often keypool checks, when an npm script started it, that npm is still there. */
const LAUNCHER_CHECK_MS = 250;
/** Every signal that stops keypool; each one drains the same way. */
const STOP_SIGNALS: readonly NodeJS.Signals[] = ["SIGTERM", "SIGINT", "SIGHUP"];

interface StartupConfig {
  server: ServerConfig;
  families: FamilyConfig;
  keys: KeySpec[];
  /** Tokens, roles, limits, and the loopback rule (src/auth/). */
  access: Access;
}

/** Every setting, checked before anything starts; an error names the variable or file at fault. */
function loadStartupConfig(env: NodeJS.ProcessEnv): StartupConfig {
  const server = loadServerConfig(env);
  const families = loadFamilyConfig(env);
  return { server, families, keys: loadKeySpecs(env, undefined, families.families), access: loadAccess(env, server.host) };
}

async function run({ server: config, families, keys, access }: StartupConfig, logger: Logger): Promise<void> {
  logger[access.listen.level](access.listen.message);
  const pool = new KeyPool({
    clock: systemClock,
    families: families.families,
    allowedFamilies: families.allowedFamilies,
    reuseDelayMs: config.pool.reuseDelayMs,
    leaseTtlMs: config.pool.leaseTtlMs,
    maxResetMs: config.pool.maxResetMs,
    defaultCooldownMs: config.pool.defaultCooldownMs,
    maxCooldownMs: config.pool.maxCooldownMs,
    maxWaitersPerFamily: access.limits.maxWaitersPerFamily,
  });

  const hub = new WatchHub(pool, {
    clock: systemClock,
    coalesceMs: config.watch.coalesceMs,
    heartbeatMs: config.watch.heartbeatMs,
    maxSubscribers: access.limits.maxWatchers,
  });

  let server: RunningServer | undefined;
  let state: DurableState | undefined;
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
        await server?.close();
        hub.close();
        pool.close();
        // Last: writes the soft state (last used, holds) too, and folds the WAL into the file.
        state?.close();
        logger.info("stopped");
        process.exit(0);
      } catch (err) {
        logger.error({ errName: (err as Error).name, message: (err as Error).message }, "error while shutting down");
        process.exit(1);
      }
    })();
  };
  // Configured and stored keys, merged by hash (src/storage/restore.ts). A state file that cannot
  // be used throws here, naming the file: the start stops rather than run with an empty pool.
  state = openDurableState({
    location: config.statePath ?? DEFAULT_STATE_PATH,
    pool,
    configured: keys,
    clock: systemClock,
    logger,
  });

  for (const signal of STOP_SIGNALS) process.on(signal, () => stop({ signal }));
  followLauncher(() => stop({ reason: "npm, which started keypool, has exited" }));

  server = await startServer(
    { host: config.host, port: config.port, tls: config.tls },
    {
      pool,
      logger,
      durability: state,
      watchKeys: createWatchKeys(hub),
      shutdownGraceMs: SHUTDOWN_GRACE_MS,
      // The request log sees every call, refused ones too; it never logs headers or messages.
      interceptors: [requestLogInterceptor(logger), ...access.interceptors],
      readMaxBytes: access.limits.maxMessageBytes,
      listenerLimits: access.listenerLimits,
    },
  );
  logger.info(
    {
      version: VERSION,
      pid: process.pid,
      host: server.host,
      port: server.port,
      url: server.url,
      protocols: ["grpc", "grpc-web", "connect"],
      http: config.tls ? ["h2", "http/1.1"] : ["h2c", "http/1.1"],
      tls: Boolean(config.tls),
      health: `${server.url}/healthz`,
      state: state.location,
      keys: pool.countByProvider(),
      auth: authMode(access, config.host),
    },
    "keypool listening",
  );
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
      process.stdout.write(helpText(VERSION, SERVER_SETTINGS));
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
  const logger = createLogger({ level: config.server.logLevel });
  run(config, logger).catch((err: unknown) => {
    const message = err instanceof Error ? err.message : String(err);
    logger.fatal({ errName: err instanceof Error ? err.name : typeof err, message }, "keypool failed to start");
    process.stderr.write(`keypool: ${message}\n`);
    process.exit(1);
  });
}

main();
