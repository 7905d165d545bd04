import type { Interceptor } from "@connectrpc/connect";
import { createAuthInterceptor } from "./auth-interceptor";
import { connectionCaps, http1ServerLimits, http2ServerLimits, loadAccessLimits, type AccessLimits } from "./access-limits";
import { decideListen, type ListenDecision } from "./listen-policy";
import { loadTokens } from "./token-config";
import { TokenStore } from "./token-store";

/**
 * Everything the server assembly needs from access control, read from the environment once at
 * start. Throws TokenConfigError / AccessConfigError / ListenPolicyError: the server must not
 * start then.
 */
export interface Access {
  tokens: TokenStore;
  limits: AccessLimits;
  /** Interceptors for the keypool.v1 services (safe on the whole router: other services pass). */
  interceptors: Interceptor[];
  /** What to log at start about authentication; already checked against the listen address. */
  listen: ListenDecision;
  /** For startServer's listenerLimits. */
  listenerLimits: {
    http2: ReturnType<typeof http2ServerLimits>;
    http1: ReturnType<typeof http1ServerLimits>;
    connections: ReturnType<typeof connectionCaps>;
  };
}

export function loadAccess(env: NodeJS.ProcessEnv, host: string, readFile?: (path: string) => string): Access {
  const tokens = new TokenStore(loadTokens(env, readFile));
  const limits = loadAccessLimits(env);
  const listen = decideListen({
    host,
    tokensConfigured: tokens.enabled,
    allowNoAuth: env.KEYPOOL_ALLOW_NO_AUTH?.trim() === "1",
  });
  // limits.maxWatchers is enforced by the watch hub itself (it counts its own subscriptions);
  // authentication runs first, so an anonymous caller cannot even take a watch slot.
  return {
    tokens,
    limits,
    interceptors: [createAuthInterceptor(tokens)],
    listen,
    listenerLimits: { http2: http2ServerLimits(limits), http1: http1ServerLimits(limits), connections: connectionCaps(limits) },
  };
}
