/**
 * KEYPOOL_STATE=redis://[user:password@]host:port[/db] (rediss:// for TLS): where the shared pool
 * lives when several replicas serve it. The URL is read once at start; what it says is kept as a
 * RedisTarget, and only its redacted form (no password) is ever shown, in logs and errors alike.
 */
import { ConfigError } from "../config/config-error";

const SCHEMES = ["redis:", "rediss:"] as const;
const DEFAULT_PORT = 6379;
/** Redis's own default `databases` count; a higher index is a typo more often than a wish. */
const MAX_DB = 15;
const PASSWORD_SHOWN = "***";

export interface RedisTarget {
  /** rediss://: TLS to Redis. */
  readonly tls: boolean;
  readonly host: string;
  readonly port: number;
  readonly db: number;
  /** The ACL user, when the URL names one. */
  readonly username?: string;
  readonly password?: string;
  /** The URL as logs and errors show it: the password replaced by ***. */
  readonly shown: string;
}

/** Whether a KEYPOOL_STATE value asks for Redis (rather than a file or `memory`). */
export function isRedisUrl(location: string): boolean {
  const lower = location.trim().toLowerCase();
  return /^rediss?:/.test(lower);
}

/**
 * The URL with any password replaced by ***, for any text that might reach a log. Text that is
 * not a URL keeps only its scheme, since it cannot be told where a password would be in it.
 */
export function redactRedisUrl(raw: string): string {
  try {
    const url = new URL(raw.trim());
    if (url.password) url.password = PASSWORD_SHOWN;
    return url.toString();
  } catch {
    const scheme = /^[a-z]+:\/\//i.exec(raw.trim())?.[0] ?? "";
    return `${scheme}(unreadable URL, not shown)`;
  }
}

/** Reads a redis:// or rediss:// URL; a ConfigError names `variable` and never echoes the password. */
export function parseRedisUrl(raw: string, variable: string): RedisTarget {
  const shown = redactRedisUrl(raw);
  let url: URL;
  try {
    url = new URL(raw.trim());
  } catch {
    throw new ConfigError(variable, `${shown} is not a URL; expected redis://[user:password@]host:port[/db] or rediss://...`);
  }
  if (!(SCHEMES as readonly string[]).includes(url.protocol)) {
    throw new ConfigError(variable, `${shown} must start with redis:// or rediss://`);
  }
  const host = url.hostname.replace(/^\[(.*)\]$/, "$1");
  if (!host) throw new ConfigError(variable, `${shown} names no host; expected redis://host:port`);
  const port = url.port === "" ? DEFAULT_PORT : Number(url.port);
  if (!Number.isInteger(port) || port < 1 || port > 65535) throw new ConfigError(variable, `${shown} has no valid port (1-65535)`);
  const path = url.pathname.replace(/^\//, "");
  if (path !== "" && !/^\d+$/.test(path)) {
    throw new ConfigError(variable, `${shown}: the path must be a database number (/0 to /${MAX_DB}), got "/${path}"`);
  }
  const db = path === "" ? 0 : Number(path);
  if (db > MAX_DB) throw new ConfigError(variable, `${shown}: database ${db} is past /${MAX_DB}`);
  if (url.search || url.hash) throw new ConfigError(variable, `${shown} must not carry a query or a fragment`);
  const decode = (part: string, what: string) => {
    try {
      return decodeURIComponent(part);
    } catch {
      throw new ConfigError(variable, `${shown}: the ${what} is not valid percent-encoding`);
    }
  };
  const username = url.username ? decode(url.username, "user name") : undefined;
  const password = url.password ? decode(url.password, "password") : undefined;
  return {
    tls: url.protocol === "rediss:",
    host,
    port,
    db,
    ...(username !== undefined ? { username } : {}),
    ...(password !== undefined ? { password } : {}),
    shown,
  };
}
