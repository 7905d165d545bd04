/**
 * Which failures of a Redis command mean "Redis is not available now" rather than a bug, and the
 * UNAVAILABLE that the caller gets for them: a bounded message that says why in an operator's
 * words, never the URL or anything a script was given. Anything else (a script's own runtime
 * error, a type error) stays a bug: the transport answers INTERNAL and logs it.
 */
import { ReplyError } from "ioredis";
import { ErrorCode, PoolError } from "../domain/errors";

/** Reply prefixes of a Redis that is busy, starting, failing over or refusing: worth a retry. */
const UNAVAILABLE_REPLIES: Record<string, string> = {
  LOADING: "Redis is loading its data",
  BUSY: "Redis is busy running a script",
  OOM: "Redis is out of memory (maxmemory)",
  READONLY: "Redis is a read-only replica (a failover is under way)",
  MASTERDOWN: "Redis lost its primary",
  CLUSTERDOWN: "the Redis Cluster is down",
  TRYAGAIN: "the Redis Cluster is moving the pool's slot",
  NOAUTH: "Redis asks for a password again",
  WRONGPASS: "Redis refused the password",
  NOPERM: "the Redis user lacks a permission",
  NOSCRIPT: "Redis lost keypool's scripts (it restarted)",
  MISCONF: "Redis cannot write its persistence file",
};

/** ioredis's own messages for a command that never got an answer. */
const CONNECTION_MESSAGES: [RegExp, string][] = [
  [/^Command timed out/, "Redis did not answer within KEYPOOL_REDIS_TIMEOUT"],
  [/^Stream isn't writeable/, "not connected to Redis"],
  [/^Connection is closed/, "the connection to Redis closed"],
  [/^Reached the max retries per request limit/, "the connection to Redis broke before the answer"],
];

const SOCKET_CODES = new Set(["ECONNRESET", "EPIPE", "ECONNREFUSED", "ETIMEDOUT", "EHOSTUNREACH", "ENETUNREACH", "ENOTFOUND"]);

export const UNAVAILABLE_PREFIX = "the pool's Redis is unavailable";

/** Why Redis is unavailable, when `err` says so; undefined for any other error. */
export function redisUnavailableReason(err: unknown): string | undefined {
  if (!(err instanceof Error)) return undefined;
  if (err instanceof ReplyError) {
    const code = /^[A-Z]+/.exec(err.message)?.[0] ?? "";
    return UNAVAILABLE_REPLIES[code];
  }
  const code = (err as NodeJS.ErrnoException).code;
  if (code && SOCKET_CODES.has(code)) return `the connection to Redis failed (${code})`;
  for (const [pattern, reason] of CONNECTION_MESSAGES) if (pattern.test(err.message)) return reason;
  return undefined;
}

/** UNAVAILABLE for a failure of Redis, or undefined when `err` is something else. */
export function redisUnavailable(err: unknown): PoolError | undefined {
  const reason = redisUnavailableReason(err);
  return reason === undefined ? undefined : new PoolError(ErrorCode.Unavailable, `${UNAVAILABLE_PREFIX}: ${reason}; retry later or on another replica`);
}
