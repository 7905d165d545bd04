#!/usr/bin/env node
/**
 * keypool's entry point: read the configuration, build the pool, serve it, and stop cleanly on
 * SIGTERM/SIGINT (health NOT_SERVING, new calls refused, open streams ended with UNAVAILABLE,
 * exit within 5 s).
 */
import { loadAccess, type Access } from "./auth/access";
import { isConfigError } from "./config/config-error";
import { loadKeySpecs } from "./config/key-sources";
import { loadFamilyConfig, type FamilyConfig } from "./config/model-families-config";
import { EXIT_DEADLINE_MS, readSettings, tlsFiles, unknownSettings, type Settings } from "./config/settings";
import type { KeySpec } from "./domain/types";
import { systemClock } from "./domain/clock";
import { KeyPool } from "./domain/key-pool";
import { createLogger, type Logger } from "./log";
import { createServerMetrics } from "./metrics/server-metrics";
import { listenerLimits } from "./server/listener-limits";
import { startServer, type RunningServer } from "./server/start-server";
import { openDurableState, type DurableState } from "./storage/durable-state";
import { requestLogInterceptor } from "./transport/request-log";
import { createWatchKeys, encodedStatusBytes } from "./transport/watch-keys";
import { WatchHub } from "./watch/watch-hub";

interface StartupConfig {
  settings: Settings;
  /** KEYPOOL_* variables no setting names: warned about once the logger exists. */
  unknown: { name: string; nearest: string }[];
  families: FamilyConfig;
  keys: KeySpec[];
  /** Tokens, interceptors, and the loopback rule (src/auth/). */
  access: Access;
}

/** Every setting, checked before anything starts; an error names the variable or file at fault. */
function loadStartupConfig(env: NodeJS.ProcessEnv): StartupConfig {
  const settings = readSettings(env);
  return {
    settings,
    unknown: unknownSettings(env),
    families: loadFamilyConfig(settings.families),
    keys: loadKeySpecs(settings.keys),
    access: loadAccess(settings),
  };
}

async function run({ settings, unknown, families, keys, access }: StartupConfig, logger: Logger): Promise<void> {
  for (const { name, nearest } of unknown) {
    logger.warn({ variable: name, nearest }, `${name} is not a keypool setting and is ignored; did you mean ${nearest}?`);
  }
  logger[access.listen.level](access.listen.message);
  const pool = new KeyPool({
    clock: systemClock,
    families: families.families,
    allowedFamilies: families.allowedFamilies,
    ...settings.pool,
  });

  const hub = new WatchHub(pool, {
    clock: systemClock,
    coalesceMs: settings.watch.coalesceMs,
    heartbeatMs: settings.watch.heartbeatMs,
    maxSubscribers: settings.watch.maxWatchers,
    measure: encodedStatusBytes,
  });

  let server: RunningServer | undefined;
  let state: DurableState | undefined;
  // Before the state file fills the pool: the census hears every restored key.
  const served = createServerMetrics({
    pool,
    clock: systemClock,
    watchers: () => hub.subscriberCount,
    storeQueue: () => state?.queued ?? 0,
  });
  let stopping = false;
  const stop = (signal: NodeJS.Signals) => {
    if (stopping) return;
    stopping = true;
    logger.info({ signal }, "shutting down");
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
    location: settings.storage.state,
    pool,
    configured: keys,
    clock: systemClock,
    logger,
    onCommitted: (seconds) => served.metrics.committed(seconds),
  });

  process.on("SIGTERM", stop);
  process.on("SIGINT", stop);

  server = await startServer(
    { host: settings.server.host, port: settings.server.port, tls: tlsFiles(settings.server), grpcPort: settings.server.grpcPort },
    {
      pool: served.pool,
      metrics: served.metrics,
      tokens: access.tokens,
      logger,
      durability: state,
      watchKeys: createWatchKeys(hub),
      // The request log sees every call, refused ones too; it never logs headers or messages.
      interceptors: [requestLogInterceptor(logger), ...access.interceptors],
      readMaxBytes: settings.limits.maxMessageBytes,
      listenerLimits: listenerLimits(settings.limits),
      connectionTimeouts: settings.connections,
    },
  );
  logger.info(
    { host: server.host, port: server.port, url: server.url, grpcPort: server.grpcPort, tls: Boolean(tlsFiles(settings.server)), keys: pool.countByProvider() },
    "keypool listening",
  );
}

function main(): void {
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
