/**
 * The connection to the Redis that keeps the shared pool (KEYPOOL_STATE=redis://...): the ioredis
 * clients, set up so that a call fails fast instead of waiting in a queue, the checks made once
 * at start, and the availability that health follows.
 *
 * - No offline queue: while Redis is unreachable a command fails at once (the call answers
 *   UNAVAILABLE) rather than wait, unbounded, for a reconnect.
 * - A command sent and not answered is never sent again after a reconnect: a script that already
 *   ran must not run twice (a usage counted twice). It fails instead.
 * - Connecting and every command give up after KEYPOOL_REDIS_TIMEOUT.
 * - Reconnects go on for as long as keypool runs, with a bounded, jittered backoff.
 *
 * At start, Redis unreachable, credentials refused, a bad TLS certificate or a Redis older than
 * the scripts need each stop the start with a StartupCheckError naming KEYPOOL_STATE. The
 * password never appears: only the RedisTarget's redacted URL is shown.
 */
import * as fs from "node:fs";
import Redis, { type RedisOptions } from "ioredis";
import { ConfigError } from "../config/config-error";
import type { RedisTarget } from "./redis-url";

/** The variable every message about the connection names. */
export const REDIS_VARIABLE = "KEYPOOL_STATE";
/** The CA file's variable, for TLS failures. */
export const REDIS_CA_VARIABLE = "KEYPOOL_REDIS_CA";
/**
 * The oldest Redis with everything keypool relies on: streams, and scripts that write after
 * reading TIME (effects replication, the default since 5.0); ACL users for user:password URLs
 * (6.0). Tests run against the Debian package's Redis (7.0).
 */
export const MIN_REDIS_VERSION = "6.0.0";

/** Reconnect backoff: from this, doubling, up to the cap, with up to half again at random. */
const RECONNECT_FIRST_MS = 50;
const RECONNECT_CAP_MS = 2000;

export interface RedisSettings {
  target: RedisTarget;
  /** KEYPOOL_REDIS_CA: a PEM file to trust for rediss://; "" trusts the system's CAs. */
  caFile: string;
  /** KEYPOOL_REDIS_TIMEOUT: connecting, and each command, give up after this. */
  timeoutMs: number;
}

/** pino's Logger fits. */
export interface RedisLogger {
  info(fields: object, message: string): void;
  warn(fields: object, message: string): void;
  error(fields: object, message: string): void;
}

/** The start cannot go on: the message names KEYPOOL_STATE (or KEYPOOL_REDIS_CA) and says why. */
export class StartupCheckError extends ConfigError {
  override readonly name = "StartupCheckError";
}

/** The delay before reconnect attempt `attempt` (1, 2, ...). */
export function reconnectDelayMs(attempt: number, random: () => number = Math.random): number {
  const base = Math.min(RECONNECT_FIRST_MS * 2 ** Math.min(attempt - 1, 10), RECONNECT_CAP_MS);
  return Math.round(base * (1 + random() / 2));
}

/** Reads KEYPOOL_REDIS_CA once; a missing file stops the start naming the variable. */
function readCa(settings: RedisSettings): Buffer | undefined {
  if (!settings.caFile) return undefined;
  try {
    return fs.readFileSync(settings.caFile);
  } catch (err) {
    throw new StartupCheckError(REDIS_CA_VARIABLE, `cannot read "${settings.caFile}": ${(err as NodeJS.ErrnoException).code ?? String(err)}`);
  }
}

/**
 * ioredis options for the client that answers calls. A client duplicated from it for blocking
 * reads (XREAD BLOCK) sets its own command timeout, one that leaves room for the block.
 * `reconnects` says whether a lost connection is tried again (it is not before the start check
 * has passed: that failure stops the start).
 */
export function redisOptions(settings: RedisSettings, ca?: Buffer, reconnects: () => boolean = () => true): RedisOptions {
  const { target, timeoutMs } = settings;
  return {
    host: target.host,
    port: target.port,
    db: target.db,
    ...(target.username !== undefined ? { username: target.username } : {}),
    ...(target.password !== undefined ? { password: target.password } : {}),
    ...(target.tls ? { tls: { servername: target.host, ...(ca ? { ca } : {}) } } : {}),
    connectionName: "keypool",
    lazyConnect: true,
    enableOfflineQueue: false,
    autoResendUnfulfilledCommands: false,
    maxRetriesPerRequest: 0,
    enableReadyCheck: true,
    connectTimeout: timeoutMs,
    commandTimeout: timeoutMs,
    retryStrategy: (attempt: number) => (reconnects() ? reconnectDelayMs(attempt) : null),
    // READONLY after a failover: reconnect, so the next attempt reaches the new primary.
    reconnectOnError: (err: Error) => (err.message.startsWith("READONLY") ? 1 : false),
    keepAlive: 10_000,
    noDelay: true,
  };
}

/** Compares dotted versions ("7.0.15" >= "6.2.0"). */
export function versionAtLeast(version: string, minimum: string): boolean {
  const parts = (v: string) => v.split(".").map((p) => Number.parseInt(p, 10) || 0);
  const [a, b] = [parts(version), parts(minimum)];
  for (let i = 0; i < Math.max(a.length, b.length); i++) {
    const [x, y] = [a[i] ?? 0, b[i] ?? 0];
    if (x !== y) return x > y;
  }
  return true;
}

/** `redis_version` from INFO's text; undefined when the reply does not say. */
export function versionFromInfo(info: string): string | undefined {
  return /^redis_version:([^\r\n]+)/m.exec(info)?.[1]?.trim();
}

/**
 * Why connecting failed, in words an operator acts on. The error's own text is kept only where
 * it is Redis's or the socket's (never an echo of the URL).
 */
export function describeFailure(target: RedisTarget, err: Error | undefined, timeoutMs: number): StartupCheckError {
  const where = target.shown;
  const code = (err as NodeJS.ErrnoException | undefined)?.code;
  const message = err?.message ?? "";
  if (/WRONGPASS|invalid password|invalid username-password/i.test(message)) {
    return new StartupCheckError(REDIS_VARIABLE, `Redis at ${where} refused the user name or password (WRONGPASS); check the credentials in the URL`);
  }
  if (/NOAUTH/i.test(message)) {
    return new StartupCheckError(REDIS_VARIABLE, `Redis at ${where} requires a password (NOAUTH); put it in the URL: redis://:password@host:port`);
  }
  if (/NOPERM/i.test(message)) {
    return new StartupCheckError(REDIS_VARIABLE, `Redis at ${where}: the user lacks a permission keypool needs (${bounded(message)})`);
  }
  if (code && /^(ERR_TLS|CERT_|DEPTH_ZERO|SELF_SIGNED|UNABLE_TO|ERR_SSL|EPROTO)/.test(code)) {
    return new StartupCheckError(
      REDIS_VARIABLE,
      `the TLS connection to Redis at ${where} failed (${code}); trust its CA with ${REDIS_CA_VARIABLE}, or use redis:// if it does not speak TLS`,
    );
  }
  if (code === "ECONNREFUSED" || code === "ENOTFOUND" || code === "EAI_AGAIN" || code === "EHOSTUNREACH" || code === "ENETUNREACH") {
    return new StartupCheckError(REDIS_VARIABLE, `cannot reach Redis at ${where} (${code}); is redis-server running there?`);
  }
  if (code === "ETIMEDOUT" || !err) {
    return new StartupCheckError(REDIS_VARIABLE, `Redis at ${where} did not answer within ${timeoutMs} ms (KEYPOOL_REDIS_TIMEOUT)`);
  }
  return new StartupCheckError(REDIS_VARIABLE, `cannot use Redis at ${where}: ${bounded(code ?? message)}`);
}

const bounded = (text: string) => (text.length > 200 ? `${text.slice(0, 200)}...` : text);

/**
 * Connects one client and waits until it is ready, bounded by the timeout; on failure the client
 * is closed and the error explains why (describeFailure).
 */
async function connectChecked(client: Redis, settings: RedisSettings): Promise<void> {
  let lastError: Error | undefined;
  const onError = (err: Error) => (lastError = err);
  client.on("error", onError);
  let timer: NodeJS.Timeout | undefined;
  try {
    await Promise.race([
      client.connect(),
      new Promise<never>((_, reject) => {
        // The connect timeout covers the socket; this also covers AUTH, SELECT and the ready check.
        timer = setTimeout(() => reject(new Error("timeout")), settings.timeoutMs * 2);
      }),
    ]);
  } catch (err) {
    // A client that lost its socket has ended (it does not reconnect before the check passed):
    // disconnect() would only arm ioredis's wait for that socket to close, which it already has,
    // holding the process for its disconnectTimeout. One still connected is closed, its socket
    // at once: a refused start has nothing to flush, and ioredis ends it only half (it waits for
    // a close that a socket it no longer reads may never see).
    const socket = client.stream as typeof client.stream | undefined;
    if (client.status !== "end") client.disconnect();
    socket?.destroy();
    const reason = lastError ?? (err instanceof Error && err.message !== "timeout" ? err : undefined);
    throw describeFailure(settings.target, reason, settings.timeoutMs);
  } finally {
    clearTimeout(timer);
    client.off("error", onError);
  }
}

export interface RedisConnection {
  /** The client that answers calls. */
  readonly client: Redis;
  /** Redis's version, from INFO server at start. */
  readonly version: string;
  /** Whether the commands client is connected and ready now. */
  readonly available: boolean;
  /** Tells `listener` each time the commands client becomes ready or loses Redis. */
  watchAvailable(listener: (available: boolean) => void): () => void;
  /** Closes every client. */
  close(): Promise<void>;
}

/**
 * Connects, checks credentials and Redis's version, and starts following the connection's state
 * (logged once per change, without the password). Throws StartupCheckError when the start must
 * stop.
 */
export async function openRedisConnection(
  settings: RedisSettings,
  options: { logger: RedisLogger; minimumVersion?: string },
): Promise<RedisConnection> {
  const ca = readCa(settings);
  const minimum = options.minimumVersion ?? MIN_REDIS_VERSION;
  const where = settings.target.shown;
  let checked = false;
  const client = new Redis(redisOptions(settings, ca, () => checked));
  const closeAll = async () => {
    await client.quit().catch(() => client.disconnect());
  };
  await connectChecked(client, settings);
  checked = true;
  // From here on failures are followed by the availability watch below.
  client.on("error", () => {});
  let version: string | undefined;
  try {
    version = versionFromInfo(await client.info("server"));
  } catch (err) {
    await closeAll();
    throw describeFailure(settings.target, err as Error, settings.timeoutMs);
  }
  if (version === undefined || !versionAtLeast(version, minimum)) {
    await closeAll();
    throw new StartupCheckError(
      REDIS_VARIABLE,
      `Redis at ${where} is version ${version ?? "unknown"}; keypool's scripts need Redis ${minimum} or newer`,
    );
  }

  const listeners = new Set<(available: boolean) => void>();
  let available = true;
  let closing = false;
  let lastError: string | undefined;
  const set = (now: boolean) => {
    if (closing || now === available) return;
    available = now;
    if (now) options.logger.info({ redis: where }, "Redis connection is back: calls are served again");
    else options.logger.error({ redis: where, reason: lastError ?? "connection closed" }, "Redis connection lost: calls answer UNAVAILABLE until it is back");
    for (const listener of [...listeners]) listener(now);
  };
  client.on("error", (err: NodeJS.ErrnoException) => (lastError = bounded(err.code ?? err.message)));
  client.on("ready", () => set(true));
  client.on("close", () => set(false));
  client.on("end", () => set(false));

  return {
    client,
    version,
    get available() {
      return available;
    },
    watchAvailable(listener) {
      listeners.add(listener);
      return () => listeners.delete(listener);
    },
    async close() {
      closing = true;
      listeners.clear();
      await closeAll();
    },
  };
}
