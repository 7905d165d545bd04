import { Code, ConnectError, type Interceptor } from "@connectrpc/connect";
import { PROTECTED_SERVICES, roleAllows, rolesAllowing, type Role } from "./roles";
import type { TokenStore } from "./token-store";

/**
 * Checks `authorization: Bearer <token>` on every call to a keypool.v1 service. Calls to other
 * services (health, reflection) pass untouched, so the interceptor may be applied to the whole
 * router. With no tokens configured it lets everything through: the server then only listens on
 * loopback (see listen-policy.ts).
 *
 * Messages never say anything about which tokens exist; a PERMISSION_DENIED names the roles
 * that may make the call, which is public knowledge (README).
 */
export function createAuthInterceptor(tokens: TokenStore): Interceptor {
  // Not async: a call that passes adds no promise of its own; a refusal throws, which connect's
  // interceptor chain turns into the same rejected call.
  return (next) => (req) => {
    if (!tokens.enabled || !PROTECTED_SERVICES.has(req.service.typeName)) return next(req);
    const presented = bearerToken(req.header.get("authorization"));
    if (presented === undefined) {
      throw new ConnectError(
        "this call needs a bearer token: send the metadata 'authorization: Bearer <token>'",
        Code.Unauthenticated,
      );
    }
    const role = tokens.roleOf(presented);
    if (role === undefined) {
      throw new ConnectError("the bearer token is not valid", Code.Unauthenticated);
    }
    if (!roleAllows(role, req.service.typeName, req.method.name)) {
      throw new ConnectError(permissionMessage(role, req.service.typeName, req.method.name), Code.PermissionDenied);
    }
    return next(req);
  };
}

function permissionMessage(role: Role, service: string, method: string): string {
  const needed = rolesAllowing(service, method).join(" or ");
  return `${method} needs the ${needed} role; this token has the ${role} role`;
}

/** The token of an `authorization: Bearer <token>` header (scheme case-insensitive), if any. */
export function bearerToken(header: string | null | undefined): string | undefined {
  if (!header) return undefined;
  const match = /^\s*bearer\s+(\S+)\s*$/i.exec(header);
  return match ? match[1] : undefined;
}
