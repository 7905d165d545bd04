/**
 * The server's settings, read once from the environment at start. Every bad value stops the start
 * with an error naming the variable, so that a typo never runs with a silent default.
 * Keys (OPENAI_KEY, ANTHROPIC_KEY, KEYPOOL_KEYS_FILE), the model family table
 * (KEYPOOL_MODEL_FAMILIES) and ALLOWED_MODEL_FAMILIES are read by their own loaders
 * (key-sources.ts, model-families-config.ts), which check families against the table.
 */
import { parseDurationMs } from "./duration";
import { LOG_LEVELS, type LogLevel } from "../log";
import { ConfigError } from "./config-error";

export { ConfigError };

export interface PoolSettings {
  reuseDelayMs: number;
  leaseTtlMs: number;
  maxResetMs: number;
  defaultCooldownMs: number;
  maxCooldownMs: number;
}

export interface ServerConfig {
  host: string;
  port: number;
  /** Both file paths, or absent for cleartext. */
  tls?: { certFile: string; keyFile: string };
  logLevel: LogLevel;
  pool: PoolSettings;
  watch: { heartbeatMs: number; coalesceMs: number };
  /** Header, request and idle timeouts of every connection (src/server/connection-guard.ts). */
  connections: { headersMs: number; requestMs: number; idleMs: number };
  /** KEYPOOL_STATE: the state file, or "memory"; absent: ./data/keypool.db (src/storage). */
  statePath?: string;
}

type Env = Record<string, string | undefined>;

/** The longest delay a node timer takes. */
const MAX_TIMER_MS = 2 ** 31 - 1;

/** One row of the configuration table: the README's table is written from the same facts. */
export interface Setting {
  name: string;
  default: string;
  meaning: string;
}

export const SERVER_SETTINGS: Setting[] = [
  { name: "KEYPOOL_HOST", default: "127.0.0.1", meaning: "address to listen on" },
  { name: "KEYPOOL_PORT", default: "50051", meaning: "port for gRPC, gRPC-Web and Connect (HTTP/2 and HTTP/1.1); 0 picks a free one" },
  { name: "KEYPOOL_TLS_CERT", default: "", meaning: "PEM certificate file; with KEYPOOL_TLS_KEY turns on TLS (h2 and http/1.1 by ALPN)" },
  { name: "KEYPOOL_TLS_KEY", default: "", meaning: "PEM private key file for KEYPOOL_TLS_CERT" },
  { name: "KEYPOOL_LOG_LEVEL", default: "info", meaning: `one of ${LOG_LEVELS.join(", ")}` },
  { name: "KEYPOOL_REUSE_DELAY", default: "1s", meaning: "how long a leased key is held before it is handed out again" },
  { name: "KEYPOOL_LEASE_TTL", default: "10m", meaning: "a lease not ended by IncrementUsage expires after this" },
  { name: "KEYPOOL_MAX_RESET", default: "10s", meaning: "cap on the wait read from x-ratelimit-reset-* headers of successful calls" },
  { name: "KEYPOOL_DEFAULT_COOLDOWN", default: "10s", meaning: "cooldown after a 429 that names no retry time" },
  { name: "KEYPOOL_MAX_COOLDOWN", default: "60s", meaning: "cap on any cooldown after a 429" },
  { name: "KEYPOOL_WATCH_HEARTBEAT", default: "15s", meaning: "WatchKeys sends a heartbeat after this long without events" },
  { name: "KEYPOOL_WATCH_COALESCE", default: "100ms", meaning: "WatchKeys merges updates of one key within this window" },
  { name: "KEYPOOL_HEADERS_TIMEOUT", default: "10s", meaning: "a new connection must name its protocol, and an HTTP/1.1 request send all its headers, within this (else 408 or closed)" },
  { name: "KEYPOOL_REQUEST_TIMEOUT", default: "30s", meaning: "a request's headers and body must have fully arrived within this (HTTP/1.1: 408; HTTP/2: the stream is reset)" },
  { name: "KEYPOOL_IDLE_TIMEOUT", default: "2m", meaning: "a connection with no call in progress is closed after this (HTTP/2: GOAWAY); open WatchKeys streams and waiting Leases keep it busy" },
  { name: "ALLOWED_MODEL_FAMILIES", default: "(all)", meaning: "comma separated families that may be leased" },
  { name: "KEYPOOL_MODEL_FAMILIES", default: "(built-in)", meaning: "extra model→family rows, inline (`openai:^my-model=gpt4o;...`) or a JSON/YAML file" },
  { name: "OPENAI_KEY", default: "", meaning: "comma separated OpenAI keys loaded at start" },
  { name: "ANTHROPIC_KEY", default: "", meaning: "comma separated Anthropic keys loaded at start" },
  { name: "KEYPOOL_KEYS_FILE", default: "", meaning: "JSON or YAML list of keys ({provider, key, modelFamilies, trial, organizationId})" },
  { name: "KEYPOOL_STATE", default: "./data/keypool.db", meaning: "SQLite file (created 0600) that keeps the pool's state across restarts; `memory` keeps nothing" },
];

function readDuration(env: Env, name: string, defaultMs: number): number {
  const raw = env[name];
  if (raw === undefined || raw.trim() === "") return defaultMs;
  const ms = parseDurationMs(raw);
  if (ms === undefined) {
    throw new ConfigError(name, `"${raw}" is not a duration (use milliseconds like 1500, or 250ms, 10s, 1m, 1h)`);
  }
  return ms;
}

function readPort(env: Env, name: string, defaultPort: number): number {
  const raw = env[name];
  if (raw === undefined || raw.trim() === "") return defaultPort;
  const value = raw.trim();
  const port = Number(value);
  if (!/^\d+$/.test(value) || port > 65535) {
    throw new ConfigError(name, `"${raw}" is not a port number (0-65535)`);
  }
  return port;
}

export function loadServerConfig(env: Env = process.env): ServerConfig {
  const host = (env.KEYPOOL_HOST ?? "").trim() || "127.0.0.1";
  const port = readPort(env, "KEYPOOL_PORT", 50051);

  const cert = env.KEYPOOL_TLS_CERT?.trim() || undefined;
  const key = env.KEYPOOL_TLS_KEY?.trim() || undefined;
  if (cert && !key) throw new ConfigError("KEYPOOL_TLS_KEY", "must be set when KEYPOOL_TLS_CERT is");
  if (key && !cert) throw new ConfigError("KEYPOOL_TLS_CERT", "must be set when KEYPOOL_TLS_KEY is");

  const level = (env.KEYPOOL_LOG_LEVEL?.trim() || "info").toLowerCase();
  if (!(LOG_LEVELS as readonly string[]).includes(level)) {
    throw new ConfigError("KEYPOOL_LOG_LEVEL", `"${env.KEYPOOL_LOG_LEVEL}" is not one of ${LOG_LEVELS.join(", ")}`);
  }

  const pool: PoolSettings = {
    reuseDelayMs: readDuration(env, "KEYPOOL_REUSE_DELAY", 1000),
    leaseTtlMs: readDuration(env, "KEYPOOL_LEASE_TTL", 600_000),
    maxResetMs: readDuration(env, "KEYPOOL_MAX_RESET", 10_000),
    defaultCooldownMs: readDuration(env, "KEYPOOL_DEFAULT_COOLDOWN", 10_000),
    maxCooldownMs: readDuration(env, "KEYPOOL_MAX_COOLDOWN", 60_000),
  };
  if (pool.leaseTtlMs <= 0) throw new ConfigError("KEYPOOL_LEASE_TTL", "must be greater than 0");

  const watch = {
    heartbeatMs: readDuration(env, "KEYPOOL_WATCH_HEARTBEAT", 15_000),
    coalesceMs: readDuration(env, "KEYPOOL_WATCH_COALESCE", 100),
  };
  if (watch.heartbeatMs <= 0) throw new ConfigError("KEYPOOL_WATCH_HEARTBEAT", "must be greater than 0");

  const connections = {
    headersMs: readDuration(env, "KEYPOOL_HEADERS_TIMEOUT", 10_000),
    requestMs: readDuration(env, "KEYPOOL_REQUEST_TIMEOUT", 30_000),
    idleMs: readDuration(env, "KEYPOOL_IDLE_TIMEOUT", 120_000),
  };
  for (const [name, ms] of [
    ["KEYPOOL_HEADERS_TIMEOUT", connections.headersMs],
    ["KEYPOOL_REQUEST_TIMEOUT", connections.requestMs],
    ["KEYPOOL_IDLE_TIMEOUT", connections.idleMs],
  ] as const) {
    // 0 would mean "never": the very thing these timeouts exist to prevent.
    if (ms <= 0) throw new ConfigError(name, "must be greater than 0");
    if (ms > MAX_TIMER_MS) throw new ConfigError(name, `must be at most ${MAX_TIMER_MS} ms (about 24 days)`);
  }

  const statePath = env.KEYPOOL_STATE?.trim() || undefined;
  return {
    host,
    port,
    ...(cert && key ? { tls: { certFile: cert, keyFile: key } } : {}),
    logLevel: level as LogLevel,
    pool,
    watch,
    connections,
    ...(statePath ? { statePath } : {}),
  };
}
