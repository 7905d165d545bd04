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
  /** KEYPOOL_STATE: the state file, or "memory"; absent: ./data/keypool.db (src/storage). */
  statePath?: string;
  /** The key checker (src/checker, docs/checker.md). */
  checker: CheckerSettings;
}

export interface CheckerSettings {
  /** KEYPOOL_CHECK_KEYS */
  enabled: boolean;
  /** KEYPOOL_OPENAI_BASE_URL, KEYPOOL_ANTHROPIC_BASE_URL: where checks are sent. */
  openaiBaseUrl: string;
  anthropicBaseUrl: string;
  concurrency: number;
  /** 0: first checks only. */
  periodMs: number;
  intervalMs: number;
  timeoutMs: number;
}

type Env = Record<string, string | undefined>;

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
  { name: "ALLOWED_MODEL_FAMILIES", default: "(all)", meaning: "comma separated families that may be leased" },
  { name: "KEYPOOL_MODEL_FAMILIES", default: "(built-in)", meaning: "extra model→family rows, inline (`openai:^my-model=gpt4o;...`) or a JSON/YAML file" },
  { name: "OPENAI_KEY", default: "", meaning: "comma separated OpenAI keys loaded at start" },
  { name: "ANTHROPIC_KEY", default: "", meaning: "comma separated Anthropic keys loaded at start" },
  { name: "KEYPOOL_KEYS_FILE", default: "", meaning: "JSON or YAML list of keys ({provider, key, modelFamilies, trial, organizationId})" },
  { name: "KEYPOOL_STATE", default: "./data/keypool.db", meaning: "SQLite file (created 0600) that keeps the pool's state across restarts; `memory` keeps nothing" },
  { name: "KEYPOOL_CHECK_KEYS", default: "true", meaning: "check every key against its upstream (models, liveness, organizations); `false` turns the checker off" },
  { name: "KEYPOOL_OPENAI_BASE_URL", default: "https://api.openai.com", meaning: "where OpenAI keys are checked (a gateway or a local fake can stand in)" },
  { name: "KEYPOOL_ANTHROPIC_BASE_URL", default: "https://api.anthropic.com", meaning: "where Anthropic keys are checked" },
  { name: "KEYPOOL_CHECK_CONCURRENCY", default: "8", meaning: "keys checked at once (1-1000)" },
  { name: "KEYPOOL_CHECK_PERIOD", default: "1h", meaning: "an ACTIVE key is checked again after this long; `0`: first checks only" },
  { name: "KEYPOOL_CHECK_INTERVAL", default: "3s", meaning: "least time between two recurring checks (plus up to half of it at random)" },
  { name: "KEYPOOL_CHECK_TIMEOUT", default: "10s", meaning: "each upstream request of a check gives up after this long" },
];

const CHECK_DEFAULTS = {
  openaiBaseUrl: "https://api.openai.com",
  anthropicBaseUrl: "https://api.anthropic.com",
};

function readBoolean(env: Env, name: string, defaultValue: boolean): boolean {
  const raw = env[name];
  if (raw === undefined || raw.trim() === "") return defaultValue;
  const value = raw.trim().toLowerCase();
  if (["true", "1", "yes", "on"].includes(value)) return true;
  if (["false", "0", "no", "off"].includes(value)) return false;
  throw new ConfigError(name, `"${raw}" is not true or false`);
}

function readBaseUrl(env: Env, name: string, defaultUrl: string): string {
  const raw = env[name]?.trim();
  if (!raw) return defaultUrl;
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    throw new ConfigError(name, `"${raw}" is not a URL (e.g. https://api.openai.com or http://127.0.0.1:8080)`);
  }
  if (url.protocol !== "http:" && url.protocol !== "https:") {
    throw new ConfigError(name, `"${raw}" must be an http:// or https:// URL`);
  }
  if (url.username || url.password || url.search || url.hash) {
    throw new ConfigError(name, `"${raw}" must not carry credentials, a query or a fragment`);
  }
  return url.toString().replace(/\/$/, "");
}

function readCount(env: Env, name: string, defaultValue: number, max: number): number {
  const raw = env[name];
  if (raw === undefined || raw.trim() === "") return defaultValue;
  const value = raw.trim();
  const n = Number(value);
  if (!/^\d+$/.test(value) || n < 1 || n > max) throw new ConfigError(name, `"${raw}" is not a whole number from 1 to ${max}`);
  return n;
}

function loadCheckerSettings(env: Env): CheckerSettings {
  const settings: CheckerSettings = {
    enabled: readBoolean(env, "KEYPOOL_CHECK_KEYS", true),
    openaiBaseUrl: readBaseUrl(env, "KEYPOOL_OPENAI_BASE_URL", CHECK_DEFAULTS.openaiBaseUrl),
    anthropicBaseUrl: readBaseUrl(env, "KEYPOOL_ANTHROPIC_BASE_URL", CHECK_DEFAULTS.anthropicBaseUrl),
    concurrency: readCount(env, "KEYPOOL_CHECK_CONCURRENCY", 8, 1000),
    periodMs: readDuration(env, "KEYPOOL_CHECK_PERIOD", 3_600_000),
    intervalMs: readDuration(env, "KEYPOOL_CHECK_INTERVAL", 3000),
    timeoutMs: readDuration(env, "KEYPOOL_CHECK_TIMEOUT", 10_000),
  };
  if (settings.timeoutMs <= 0) throw new ConfigError("KEYPOOL_CHECK_TIMEOUT", "must be greater than 0");
  return settings;
}

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

  const statePath = env.KEYPOOL_STATE?.trim() || undefined;
  const checker = loadCheckerSettings(env);
  return {
    host,
    port,
    ...(cert && key ? { tls: { certFile: cert, keyFile: key } } : {}),
    logLevel: level as LogLevel,
    pool,
    watch,
    checker,
    ...(statePath ? { statePath } : {}),
  };
}
