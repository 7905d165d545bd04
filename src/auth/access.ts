import type { Interceptor } from "@connectrpc/connect";
import type { Settings } from "../config/settings";
import { createAuthInterceptor } from "./auth-interceptor";
import { decideListen, type ListenDecision } from "./listen-policy";
import { loadTokens } from "./token-config";
import { TokenStore } from "./token-store";

/**
 * Everything the server assembly needs from access control, built once at start from the
 * settings. Throws TokenConfigError / ListenPolicyError: the server must not start then.
 */
export interface Access {
  tokens: TokenStore;
  /** Interceptors for the keypool.v1 services (safe on the whole router: other services pass). */
  interceptors: Interceptor[];
  /** What to log at start about authentication; already checked against the listen address. */
  listen: ListenDecision;
}

export function loadAccess(
  settings: Pick<Settings, "access" | "server">,
  readFile?: (path: string) => string,
): Access {
  const tokens = new TokenStore(loadTokens(settings.access, readFile));
  const listen = decideListen({
    host: settings.server.host,
    tokensConfigured: tokens.enabled,
    allowNoAuth: settings.access.allowNoAuth,
  });
  // The watch hub enforces KEYPOOL_MAX_WATCHERS itself (it counts its own subscriptions);
  // authentication runs first, so an anonymous caller cannot even take a watch slot.
  return { tokens, interceptors: [createAuthInterceptor(tokens)], listen };
}
