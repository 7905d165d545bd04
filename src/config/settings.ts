/**
 * Every environment variable keypool reads, in one table: its name, default, parser, bounds and
 * meaning. The server reads the environment once at start (readSettings) and hands the parsed
 * values on; no other module reads the environment. A bad value stops the start with an error
 * naming the variable, so that a typo never runs with a silent default; an unknown KEYPOOL_*
 * variable (unknownSettings) is reported with the nearest known name.
 *
 * The README's configuration table lists the same rows with the same defaults (a unit test
 * compares them).
 */
import { placeholdersOf } from "../checker/url-template";
import { POOL_DEFAULTS } from "../domain/pool-options";
import { DEFAULT_WATCH_COALESCE_MS, DEFAULT_WATCH_HEARTBEAT_MS } from "../watch/watch-hub";
import { ConfigError, ConfigMessageError } from "./config-error";
import { formatDurationMs, parseDurationMs } from "../domain/duration";

export const LOG_LEVELS = ["fatal", "error", "warn", "info", "debug", "trace", "silent"] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

/** How long open connections get to finish once shutdown begins. */
export const SHUTDOWN_GRACE_MS = 2000;
/** The process is gone this long after a stop signal, whatever is still open. */
export const EXIT_DEADLINE_MS = 4500;

export type Env = Readonly<Record<string, string | undefined>>;

/** One variable: what it is called, what it holds when unset, and how its text is read. */
export interface Setting<T> {
  readonly name: string;
  readonly default: T;
  /** The default as the README's table cell shows it (a literal in backticks); "" when there is none. */
  readonly shown: string;
  readonly meaning: string;
  /** Reads a set, non-empty value; throws a ConfigError naming the variable. */
  readonly parse: (raw: string, name: string) => T;
}

const literal = (text: string) => `\`${text}\``;

/** The longest delay a node timer takes: a longer one fires at once. */
const MAX_TIMER_MS = 2 ** 31 - 1;

function duration(
  name: string,
  defaultMs: number,
  meaning: string,
  min = 0,
  max = Infinity,
): Setting<number> {
  return {
    name,
    default: defaultMs,
    shown: literal(formatDurationMs(defaultMs)),
    meaning,
    parse(raw) {
      const ms = parseDurationMs(raw);
      if (ms === undefined) {
        throw new ConfigError(name, `"${raw}" is not a duration (use milliseconds like 1500, or 250ms, 10s, 1m, 1h)`);
      }
      if (ms < min) throw new ConfigError(name, `must be greater than ${min - 1}`);
      if (ms > max) throw new ConfigError(name, `must be at most ${formatDurationMs(max)}`);
      return ms;
    },
  };
}

/** A whole number within sane bounds: a value outside them is a typo, not a wish. */
function count(name: string, defaultValue: number, [min, max]: [number, number], meaning: string): Setting<number> {
  return {
    name,
    default: defaultValue,
    shown: literal(String(defaultValue)),
    meaning,
    parse(raw) {
      const value = raw.trim();
      if (!/^\d+$/.test(value) || Number(value) < min || Number(value) > max) {
        throw new ConfigMessageError(`${name} must be a whole number from ${min} to ${max}, got "${value}"`);
      }
      return Number(value);
    },
  };
}

/**
 * Text taken as given (trimmed). Without a default it is empty, and `shown` may describe in
 * words what an empty value means.
 */
function text(name: string, meaning: string, empty: { default: string } | { shown: string } = { shown: "" }): Setting<string> {
  if ("default" in empty) return { name, default: empty.default, shown: literal(empty.default), meaning, parse: (raw) => raw.trim() };
  return { name, default: "", shown: empty.shown, meaning, parse: (raw) => raw.trim() };
}

/** Key lists keep their raw text: key-sources.ts splits them and never echoes an entry. */
function rawText(name: string, meaning: string): Setting<string> {
  return { name, default: "", shown: "", meaning, parse: (raw) => raw };
}

const port: Setting<number> = {
  name: "KEYPOOL_PORT",
  default: 50051,
  shown: literal("50051"),
  meaning: "the one port for gRPC, gRPC-Web and Connect (HTTP/2 and HTTP/1.1); `0` picks a free one",
  parse(raw, name) {
    const value = raw.trim();
    if (!/^\d+$/.test(value) || Number(value) > 65535) {
      throw new ConfigError(name, `"${raw}" is not a port number (0-65535)`);
    }
    return Number(value);
  },
};

/** Unset: no native gRPC port. */
const grpcPort: Setting<number | undefined> = {
  name: "KEYPOOL_GRPC_PORT",
  default: undefined,
  shown: "off",
  meaning:
    "a second port for plain gRPC (HTTP/2, TLS as configured) served by grpc-js: the same services, access rules and limits, several times the leases per second. `50052` is the usual choice; `0` picks a free one",
  parse: (raw, name) => port.parse(raw, name),
};

const logLevel: Setting<LogLevel> = {
  name: "KEYPOOL_LOG_LEVEL",
  default: "info",
  shown: literal("info"),
  meaning: `one of ${LOG_LEVELS.join(", ")}`,
  parse(raw, name) {
    const level = raw.trim().toLowerCase();
    if (!(LOG_LEVELS as readonly string[]).includes(level)) {
      throw new ConfigError(name, `"${raw}" is not one of ${LOG_LEVELS.join(", ")}`);
    }
    return level as LogLevel;
  },
};

/** Only the exact value "1" opts out: anything else keeps the loopback rule. */
const allowNoAuth: Setting<boolean> = {
  name: "KEYPOOL_ALLOW_NO_AUTH",
  default: false,
  shown: "",
  meaning: "`1` lets a non-loopback `KEYPOOL_HOST` run without tokens",
  parse: (raw) => raw.trim() === "1",
};

/** true/false (also 1/0, yes/no, on/off); anything else stops the start. */
function flag(name: string, defaultValue: boolean, meaning: string): Setting<boolean> {
  return {
    name,
    default: defaultValue,
    shown: literal(String(defaultValue)),
    meaning,
    parse(raw) {
      const value = raw.trim().toLowerCase();
      if (["true", "1", "yes", "on"].includes(value)) return true;
      if (["false", "0", "no", "off"].includes(value)) return false;
      throw new ConfigError(name, `"${raw}" is not true or false`);
    },
  };
}

/** An http(s) base URL without credentials, query or fragment; kept without a trailing slash. */
function baseUrl(name: string, defaultUrl: string, meaning: string): Setting<string> {
  return {
    name,
    default: defaultUrl,
    shown: literal(defaultUrl),
    meaning,
    parse(raw) {
      let url: URL;
      try {
        url = new URL(raw.trim());
      } catch {
        throw new ConfigError(name, `"${raw}" is not a URL (e.g. https://api.openai.com or http://127.0.0.1:8090)`);
      }
      if (url.protocol !== "http:" && url.protocol !== "https:") throw new ConfigError(name, `"${raw}" must be an http:// or https:// URL`);
      if (url.username || url.password || url.search || url.hash) {
        throw new ConfigError(name, `"${raw}" must not carry credentials, a query or a fragment`);
      }
      return url.toString().replace(/\/$/, "");
    },
  };
}

/**
 * The start of every Redis key of one pool. keypool wraps it in braces, one hash tag, so that a
 * pool lives in one Redis Cluster slot; braces of its own would break that.
 */
const redisPrefix: Setting<string> = {
  name: "KEYPOOL_REDIS_PREFIX",
  default: "keypool",
  shown: literal("keypool"),
  meaning: "with Redis: every key of the pool is named `{prefix}:...` (one hash tag, one Cluster slot); pools sharing one Redis need different prefixes",
  parse(raw, name) {
    const value = raw.trim();
    if (!/^[A-Za-z0-9_.:-]{1,64}$/.test(value)) {
      throw new ConfigError(name, `"${value.slice(0, 80)}" must be 1 to 64 letters, digits, or _ . : - (no braces: keypool adds the hash tag)`);
    }
    return value;
  },
};

/**
 * A base URL that may name `{placeholder}`s, filled from each key's credential (an Azure resource,
 * an AWS or GCP region: src/checker/url-template.ts). Validated as baseUrl with each placeholder
 * standing for a host label; any other `{...}` stops the start. Kept as written, without a
 * trailing slash.
 */
function baseUrlTemplate(name: string, defaultUrl: string, placeholders: readonly string[], meaning: string): Setting<string> {
  const plain = baseUrl(name, defaultUrl, meaning);
  return {
    ...plain,
    parse(raw, variable) {
      const named = placeholdersOf(raw);
      const unknown = named.find((p) => !placeholders.includes(p));
      if (unknown !== undefined) {
        const allowed = placeholders.map((p) => `{${p}}`).join(", ");
        throw new ConfigError(name, `"${raw}" names {${unknown}}; the placeholders it may name are ${allowed}`);
      }
      if (/[{}]/.test(raw.replace(/\{[a-z]+\}/g, ""))) throw new ConfigError(name, `"${raw}" has a brace that opens or closes no placeholder`);
      if (named.length === 0) return plain.parse(raw, variable);
      plain.parse(raw.replace(/\{[a-z]+\}/g, "placeholder"), variable);
      return raw.trim().replace(/\/$/, "");
    },
  };
}

/** The table, grouped by the part of keypool that receives each group. */
export const SETTINGS = {
  server: {
    host: text("KEYPOOL_HOST", "address to listen on", { default: "127.0.0.1" }),
    port,
    grpcPort,
    tlsCert: text("KEYPOOL_TLS_CERT", "PEM certificate file; with `KEYPOOL_TLS_KEY` turns on TLS (h2 and http/1.1 by ALPN)"),
    tlsKey: text("KEYPOOL_TLS_KEY", "PEM private key file for `KEYPOOL_TLS_CERT`"),
    logLevel,
  },
  keys: {
    openai: rawText("OPENAI_KEY", "OpenAI keys loaded at start, comma separated (trimmed; empty and repeated entries dropped)"),
    anthropic: rawText("ANTHROPIC_KEY", "Anthropic keys loaded at start, the same way"),
    file: text("KEYPOOL_KEYS_FILE", "JSON or YAML list of keys of any provider (`provider`, `key` or an Azure, Bedrock or Vertex credential's fields, `modelFamilies`, `trial`, `organizationId`), loaded after the two variables"),
  },
  families: {
    table: text("KEYPOOL_MODEL_FAMILIES", "extra model → family rows, inline (`openai:^my-model=gpt4o;...`) or a JSON/YAML file", { shown: "built-in tables" }),
    allowed: text("ALLOWED_MODEL_FAMILIES", "comma separated families that may be leased; others are `PERMISSION_DENIED`. An unknown name stops the start", { shown: "every family" }),
  },
  pool: {
    reuseDelayMs: duration("KEYPOOL_REUSE_DELAY", POOL_DEFAULTS.reuseDelayMs, "a leased key is not handed out again before this (unless a report says it is ready)"),
    leaseTtlMs: duration("KEYPOOL_LEASE_TTL", POOL_DEFAULTS.leaseTtlMs, "a lease not ended by `IncrementUsage` ends after this (`in_flight` drops)", 1),
    maxResetMs: duration("KEYPOOL_MAX_RESET", POOL_DEFAULTS.maxResetMs, "cap on a hold read from `x-ratelimit-reset-*` headers of a successful answer"),
    defaultCooldownMs: duration("KEYPOOL_DEFAULT_COOLDOWN", POOL_DEFAULTS.defaultCooldownMs, "cooldown after a 429 that states no wait"),
    maxCooldownMs: duration("KEYPOOL_MAX_COOLDOWN", POOL_DEFAULTS.maxCooldownMs, "cap on any cooldown after a 429"),
    maxWaitersPerFamily: count("KEYPOOL_MAX_WAITERS", POOL_DEFAULTS.maxWaitersPerFamily, [1, 10_000_000], "`Lease` calls waiting (`max_wait` > 0) for one model family; the next one gets `RESOURCE_EXHAUSTED` at once"),
    maxWaiters: count("KEYPOOL_MAX_WAITERS_TOTAL", POOL_DEFAULTS.maxWaiters, [1, 10_000_000], "`Lease` calls waiting for a key over all families (each holds a call open); the next one gets `RESOURCE_EXHAUSTED` with a retry delay"),
  },
  watch: {
    heartbeatMs: duration("KEYPOOL_WATCH_HEARTBEAT", DEFAULT_WATCH_HEARTBEAT_MS, "`WatchKeys` sends a heartbeat after this long without events", 1),
    coalesceMs: duration("KEYPOOL_WATCH_COALESCE", DEFAULT_WATCH_COALESCE_MS, "`WatchKeys` merges updates of one key within this window"),
    maxWatchers: count("KEYPOOL_MAX_WATCHERS", 1000, [1, 1_000_000], "`WatchKeys` streams open at once, all clients together; the next one gets `RESOURCE_EXHAUSTED` until one closes"),
  },
  access: {
    tokens: rawText("KEYPOOL_TOKENS", "bearer tokens, `role:token` comma separated (roles: lease, watch, admin)"),
    tokensFile: text("KEYPOOL_TOKENS_FILE", "a file of `role:token` lines (`#` comments); adds to `KEYPOOL_TOKENS`"),
    allowNoAuth,
  },
  limits: {
    maxMessageBytes: count("KEYPOOL_MAX_MESSAGE_BYTES", 4 * 1024 * 1024, [1024, 1024 * 1024 * 1024], "a request message larger than this: `RESOURCE_EXHAUSTED`"),
    maxConcurrentStreams: count("KEYPOOL_MAX_CONCURRENT_STREAMS", 1000, [1, 2 ** 31 - 1], "HTTP/2 streams one connection may have open (advertised in SETTINGS)"),
    maxHeaderBytes: count("KEYPOOL_MAX_HEADER_BYTES", 64 * 1024, [1024, 64 * 1024], "HTTP/1.1 request headers larger than this: HTTP 431; HTTP/2 advertises it and resets a stream whose headers pass it (ENHANCE_YOUR_CALM) once the client has acknowledged the settings, and node closes a connection whose header block passes 64 KiB (also the most allowed)"),
    maxConnections: count("KEYPOOL_MAX_CONNECTIONS", 4096, [1, 1_000_000], "connections open at once, all clients together; a new one is closed at once (keep it below the file descriptor limit, `ulimit -n`)"),
    maxConnectionsPerAddress: count("KEYPOOL_MAX_CONNECTIONS_PER_ADDRESS", 512, [1, 1_000_000], "connections open at once from one remote IP address; the next one from it is closed at once"),
    maxStreamResets: count("KEYPOOL_MAX_STREAM_RESETS", 1000, [1, 1_000_000], "HTTP/2 streams one connection may reset per 10 s (a budget that refills continuously); past it the connection gets `GOAWAY` `ENHANCE_YOUR_CALM` and is closed (rapid reset)"),
  },
  connections: {
    headersMs: duration("KEYPOOL_HEADERS_TIMEOUT", 10_000, "a new connection must show its protocol, and an HTTP/1.1 request send all its headers, within this (else HTTP 408, or the connection is closed)", 1, MAX_TIMER_MS),
    requestMs: duration("KEYPOOL_REQUEST_TIMEOUT", 30_000, "a request's headers and body must have fully arrived within this (HTTP/1.1: 408; HTTP/2: the stream is reset)", 1, MAX_TIMER_MS),
    idleMs: duration("KEYPOOL_IDLE_TIMEOUT", 120_000, "a connection with no call in progress is closed after this (HTTP/2: `GOAWAY`; gRPC clients reconnect); an open `WatchKeys` stream or a waiting `Lease` keeps it in use", 1, MAX_TIMER_MS),
  },
  /** The key checker (src/checker, docs/checker.md). */
  checker: {
    enabled: flag("KEYPOOL_CHECK_KEYS", true, "check every key against its upstream (models, liveness, organizations: docs/checker.md); `false` takes keys on faith"),
    openaiBaseUrl: baseUrl("KEYPOOL_OPENAI_BASE_URL", "https://api.openai.com", "where OpenAI keys are checked (a gateway or a local fake can stand in; a path is kept)"),
    anthropicBaseUrl: baseUrl("KEYPOOL_ANTHROPIC_BASE_URL", "https://api.anthropic.com", "where Anthropic keys are checked"),
    googleAiBaseUrl: baseUrl("KEYPOOL_GOOGLE_AI_BASE_URL", "https://generativelanguage.googleapis.com", "where Google AI (Gemini API) keys are checked"),
    mistralBaseUrl: baseUrl("KEYPOOL_MISTRAL_BASE_URL", "https://api.mistral.ai", "where Mistral keys are checked"),
    azureBaseUrl: baseUrlTemplate("KEYPOOL_AZURE_BASE_URL", "https://{resource}.openai.azure.com", ["resource"], "where Azure OpenAI keys are checked; `{resource}` is the key's resource name (a URL without it serves every resource)"),
    bedrockBaseUrl: baseUrlTemplate("KEYPOOL_BEDROCK_BASE_URL", "https://bedrock.{region}.amazonaws.com", ["region"], "where AWS Bedrock keys are checked (ListFoundationModels, SigV4); `{region}` is the key's region"),
    vertexBaseUrl: baseUrlTemplate("KEYPOOL_VERTEX_BASE_URL", "https://{region}-aiplatform.googleapis.com", ["region"], "where GCP Vertex keys list models; `{region}` is the key's region"),
    vertexTokenUrl: baseUrl("KEYPOOL_VERTEX_TOKEN_URL", "https://oauth2.googleapis.com/token", "where a Vertex key's service account trades its signed JWT for an access token"),
    concurrency: count("KEYPOOL_CHECK_CONCURRENCY", 8, [1, 1000], "keys checked at once"),
    periodMs: duration("KEYPOOL_CHECK_PERIOD", 3_600_000, "an ACTIVE key is checked again after this long; `0`: first checks only"),
    intervalMs: duration("KEYPOOL_CHECK_INTERVAL", 3000, "least time between two recurring checks (plus up to half of it at random)"),
    timeoutMs: duration("KEYPOOL_CHECK_TIMEOUT", 10_000, "each upstream request of a check gives up after this long", 1),
  },
  storage: {
    state: text(
      "KEYPOOL_STATE",
      "SQLite file (created 0600) that keeps the pool's state across restarts; `memory` keeps nothing; `redis://[user:password@]host:port[/db]` (`rediss://` for TLS) keeps one pool in Redis for several replicas (see Several replicas on one Redis)",
      { default: "./data/keypool.db" },
    ),
  },
  /** With KEYPOOL_STATE=redis://... (src/redis/). */
  redis: {
    prefix: redisPrefix,
    caFile: text("KEYPOOL_REDIS_CA", "with `rediss://`: PEM file of the CA (or self-signed certificate) that signed Redis's TLS certificate", { shown: "the system's CAs" }),
    timeoutMs: duration("KEYPOOL_REDIS_TIMEOUT", 1000, "with Redis: connecting, and each Redis command, give up after this; the call answers `UNAVAILABLE`", 1, 60_000),
  },
  /** Read by the `keypool-watch` command, not by the server. */
  watchClient: {
    url: text("KEYPOOL_URL", "`keypool-watch`: the server to watch", { default: "http://127.0.0.1:50051" }),
    token: rawText("KEYPOOL_TOKEN", "`keypool-watch`: a bearer token with the watch or admin role"),
  },
} as const;

type Table = typeof SETTINGS;
type ValueOf<S> = S extends Setting<infer T> ? T : never;
export type SettingsGroup<G extends Record<string, Setting<unknown>>> = { -readonly [K in keyof G]: ValueOf<G[K]> };
export type Settings = { -readonly [G in keyof Table]: SettingsGroup<Table[G]> };

/** Every row of the table, in order. */
export function allSettings(): Setting<unknown>[] {
  return Object.values(SETTINGS).flatMap((group) => Object.values(group) as Setting<unknown>[]);
}

/** Reads one group; an unset or blank variable takes the default. */
export function readGroup<G extends Record<string, Setting<unknown>>>(env: Env, group: G): SettingsGroup<G> {
  const out: Record<string, unknown> = {};
  for (const [field, setting] of Object.entries(group)) {
    const raw = env[setting.name];
    out[field] = raw === undefined || raw.trim() === "" ? setting.default : setting.parse(raw, setting.name);
  }
  return out as SettingsGroup<G>;
}

/** Reads every variable once; throws a ConfigError (or ConfigMessageError) naming the one at fault. */
export function readSettings(env: Env): Settings {
  const settings = Object.fromEntries(
    Object.entries(SETTINGS).map(([name, group]) => [name, readGroup(env, group as Record<string, Setting<unknown>>)]),
  ) as Settings;
  const { tlsCert, tlsKey } = settings.server;
  if (tlsCert && !tlsKey) throw new ConfigError(SETTINGS.server.tlsKey.name, "must be set when KEYPOOL_TLS_CERT is");
  if (tlsKey && !tlsCert) throw new ConfigError(SETTINGS.server.tlsCert.name, "must be set when KEYPOOL_TLS_KEY is");
  const { port: mainPort, grpcPort: nativePort } = settings.server;
  if (nativePort !== undefined && nativePort !== 0 && nativePort === mainPort) {
    throw new ConfigError(SETTINGS.server.grpcPort.name, `must differ from KEYPOOL_PORT (${mainPort})`);
  }
  return settings;
}

/** Both TLS files, or undefined for cleartext. */
export function tlsFiles(server: Settings["server"]): { certFile: string; keyFile: string } | undefined {
  return server.tlsCert && server.tlsKey ? { certFile: server.tlsCert, keyFile: server.tlsKey } : undefined;
}

/** KEYPOOL_* variables that no row names: each with the nearest known name, for a warning. */
export function unknownSettings(env: Env): { name: string; nearest: string }[] {
  const known = allSettings().map((s) => s.name);
  const knownSet = new Set(known);
  return Object.keys(env)
    .filter((name) => name.startsWith("KEYPOOL_") && !knownSet.has(name))
    .sort()
    .map((name) => ({ name, nearest: nearestName(name, known) }));
}

function nearestName(name: string, known: string[]): string {
  let best = known[0]!;
  let bestDistance = Infinity;
  for (const candidate of known) {
    const d = editDistance(name, candidate);
    if (d < bestDistance) [best, bestDistance] = [candidate, d];
  }
  return best;
}

/** Levenshtein distance; names are short, so the quadratic table is cheap. */
function editDistance(a: string, b: string): number {
  let previous = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const current = [i];
    for (let j = 1; j <= b.length; j++) {
      current[j] = Math.min(previous[j]! + 1, current[j - 1]! + 1, previous[j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1));
    }
    previous = current;
  }
  return previous[b.length]!;
}

/** The README's configuration table, row for row: a unit test keeps the README equal to it. */
export function settingsTableMarkdown(): string {
  const cell = (text: string) => text.replace(/\|/g, "\\|");
  const rows = allSettings().map((s) => `| \`${s.name}\` |${s.shown ? ` ${cell(s.shown)} ` : " "}| ${cell(s.meaning)} |`);
  return ["| variable | default | meaning |", "|---|---|---|", ...rows].join("\n");
}
