/**
 * Who may call what. A token carries one role; each role allows a fixed set of RPCs of the
 * keypool.v1 services. Services not listed here (health, reflection) need no token at all.
 */
export type Role = "lease" | "watch" | "admin";

export const ROLES: readonly Role[] = ["lease", "watch", "admin"];

export function isRole(value: string): value is Role {
  return (ROLES as readonly string[]).includes(value);
}

const POOL_SERVICE = "keypool.v1.KeyPoolService";
const ADMIN_SERVICE = "keypool.v1.KeyAdminService";

/** The services whose every RPC needs a token (when tokens are configured). */
export const PROTECTED_SERVICES: ReadonlySet<string> = new Set([POOL_SERVICE, ADMIN_SERVICE]);

/**
 * What the non-admin roles may call, by full method name. `admin` may call everything in a
 * protected service, including RPCs added to the contract later: a new RPC is admin-only until
 * it is listed here, so that adding one never opens it by accident.
 */
const GRANTS: Record<Exclude<Role, "admin">, ReadonlySet<string>> = {
  lease: new Set([
    `${POOL_SERVICE}/Lease`,
    `${POOL_SERVICE}/ReportRateLimit`,
    `${POOL_SERVICE}/IncrementUsage`,
    `${POOL_SERVICE}/GetLockoutPeriod`,
  ]),
  watch: new Set([
    `${POOL_SERVICE}/WatchKeys`,
    `${POOL_SERVICE}/ListKeys`,
    `${POOL_SERVICE}/GetLockoutPeriod`,
  ]),
};

export function roleAllows(role: Role, serviceTypeName: string, methodName: string): boolean {
  if (!PROTECTED_SERVICES.has(serviceTypeName)) return true;
  if (role === "admin") return true;
  return GRANTS[role].has(`${serviceTypeName}/${methodName}`);
}

/** The roles that may call a method, for PERMISSION_DENIED messages ("needs the watch or admin role"). */
export function rolesAllowing(serviceTypeName: string, methodName: string): Role[] {
  return ROLES.filter((role) => roleAllows(role, serviceTypeName, methodName));
}

/** The roles that may read GET /metrics when tokens are configured (it shows what watchers see). */
export const METRICS_ROLES: readonly Role[] = ["watch", "admin"];
