import { ConfigMessageError } from "../config/config-error";
import { isIP } from "node:net";

/**
 * The rule for running without tokens: a pool of paid secrets is never open to the network by
 * accident. Without tokens the server may only listen on a loopback address; anything else needs
 * KEYPOOL_ALLOW_NO_AUTH=1, said out loud.
 */
export class ListenPolicyError extends ConfigMessageError {
  override readonly name = "ListenPolicyError";
}

export interface ListenDecision {
  /** What to log at start, at info (secured or loopback) or warn (opted out) level. */
  level: "info" | "warn";
  message: string;
}

/** True for 127.0.0.0/8, ::1, IPv4-mapped loopback and the name "localhost". */
export function isLoopbackHost(host: string): boolean {
  const h = host.trim().toLowerCase().replace(/^\[(.*)\]$/, "$1");
  if (h === "localhost" || h.endsWith(".localhost")) return true;
  if (isIP(h) === 4) return h.startsWith("127.");
  if (isIP(h) === 6) {
    if (h === "::1" || h === "0:0:0:0:0:0:0:1") return true;
    const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/.exec(h);
    return mapped !== null && mapped[1].startsWith("127.");
  }
  return false;
}

export function decideListen(opts: {
  host: string;
  tokensConfigured: boolean;
  allowNoAuth: boolean;
}): ListenDecision {
  if (opts.tokensConfigured) {
    return { level: "info", message: "bearer tokens configured: keypool.v1 calls need a token" };
  }
  if (isLoopbackHost(opts.host)) {
    return {
      level: "info",
      message: `no tokens configured (KEYPOOL_TOKENS, KEYPOOL_TOKENS_FILE): listening on loopback only (${opts.host}), calls need no token`,
    };
  }
  if (opts.allowNoAuth) {
    return {
      level: "warn",
      message: `no tokens configured and KEYPOOL_ALLOW_NO_AUTH=1: listening on ${opts.host} with NO authentication; anyone who reaches this port can lease keys`,
    };
  }
  throw new ListenPolicyError(
    `KEYPOOL_HOST=${opts.host} is not a loopback address and no tokens are configured: set KEYPOOL_TOKENS or KEYPOOL_TOKENS_FILE, listen on 127.0.0.1, or set KEYPOOL_ALLOW_NO_AUTH=1 to run without authentication`,
  );
}
