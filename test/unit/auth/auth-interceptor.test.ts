import { create } from "@bufbuild/protobuf";
import { Code, ConnectError, createClient, createRouterTransport, type ConnectRouter } from "@connectrpc/connect";
import { createAuthInterceptor } from "../../../src/auth/auth-interceptor";
import { TokenStore } from "../../../src/auth/token-store";
import { Health, HealthCheckResponse_ServingStatus } from "../../../gen/ts/grpc/health/v1/health_pb";
import {
  KeyAdminService,
  KeyPoolService,
  WatchKeysResponseSchema,
} from "../../../gen/ts/keypool/v1/keypool_pb";

const tokens = new TokenStore([
  { role: "lease", token: "t-lease" },
  { role: "watch", token: "t-watch" },
  { role: "admin", token: "t-admin" },
]);

/** Services that answer every call with an empty message: only the interceptor is under test. */
function routes(router: ConnectRouter) {
  router.service(KeyPoolService, {
    lease: () => ({}),
    reportRateLimit: () => ({}),
    incrementUsage: () => ({}),
    getLockoutPeriod: () => ({}),
    listKeys: () => ({}),
    async *watchKeys() {
      yield create(WatchKeysResponseSchema, { sequence: 1n });
    },
  });
  router.service(KeyAdminService, {
    addKeys: () => ({}),
    removeKey: () => ({}),
    disableKey: () => ({}),
    enableKey: () => ({}),
    recheckKeys: () => ({}),
  });
  router.service(Health, {
    check: () => ({ status: HealthCheckResponse_ServingStatus.SERVING }),
  });
}

const transport = (store: TokenStore) =>
  createRouterTransport(routes, { router: { interceptors: [createAuthInterceptor(store)] } });

type Call = (headers: Record<string, string>) => Promise<unknown>;

function calls(store: TokenStore): Record<string, Call> {
  const pool = createClient(KeyPoolService, transport(store));
  const admin = createClient(KeyAdminService, transport(store));
  return {
    Lease: (headers) => pool.lease({}, { headers }),
    ReportRateLimit: (headers) => pool.reportRateLimit({}, { headers }),
    IncrementUsage: (headers) => pool.incrementUsage({}, { headers }),
    GetLockoutPeriod: (headers) => pool.getLockoutPeriod({}, { headers }),
    ListKeys: (headers) => pool.listKeys({}, { headers }),
    WatchKeys: async (headers) => {
      for await (const _ of pool.watchKeys({}, { headers })) void _;
    },
    AddKeys: (headers) => admin.addKeys({}, { headers }),
    RemoveKey: (headers) => admin.removeKey({}, { headers }),
    DisableKey: (headers) => admin.disableKey({}, { headers }),
    EnableKey: (headers) => admin.enableKey({}, { headers }),
    RecheckKeys: (headers) => admin.recheckKeys({}, { headers }),
  };
}

const allowed: Record<string, string[]> = {
  lease: ["Lease", "ReportRateLimit", "IncrementUsage", "GetLockoutPeriod"],
  watch: ["WatchKeys", "ListKeys", "GetLockoutPeriod"],
  admin: Object.keys(calls(tokens)),
};

async function codeOf(call: Promise<unknown>): Promise<Code | "ok"> {
  try {
    await call;
    return "ok";
  } catch (err) {
    return ConnectError.from(err).code;
  }
}

describe("auth interceptor", () => {
  const byName = calls(tokens);
  const cases: [string, string, Record<string, string>, Code | "ok"][] = [];
  for (const rpc of Object.keys(byName)) {
    cases.push([rpc, "no token", {}, Code.Unauthenticated]);
    cases.push([rpc, "a wrong token", { authorization: "Bearer nope" }, Code.Unauthenticated]);
    cases.push([rpc, "a non-bearer scheme", { authorization: "Basic dC1hZG1pbg==" }, Code.Unauthenticated]);
    for (const role of ["lease", "watch", "admin"]) {
      const expected = allowed[role].includes(rpc) ? "ok" : Code.PermissionDenied;
      cases.push([rpc, `the ${role} role`, { authorization: `Bearer t-${role}` }, expected]);
    }
  }

  it.each(cases)("%s with %s → %s", async (rpc, _who, headers, expected) => {
    expect(await codeOf(byName[rpc](headers))).toBe(expected);
  });

  it("says nothing about valid tokens when refusing one", async () => {
    const err = ConnectError.from(await byName.Lease({ authorization: "Bearer t-admi" }).catch((e) => e));
    expect(err.code).toBe(Code.Unauthenticated);
    expect(err.rawMessage).not.toMatch(/t-admin|t-lease|t-watch|lease|watch|admin/);
  });

  it("names the role needed when the role is wrong", async () => {
    const err = ConnectError.from(await byName.AddKeys({ authorization: "Bearer t-watch" }).catch((e) => e));
    expect(err.code).toBe(Code.PermissionDenied);
    expect(err.rawMessage).toBe("AddKeys needs the admin role; this token has the watch role");
    const list = ConnectError.from(await byName.ListKeys({ authorization: "Bearer t-lease" }).catch((e) => e));
    expect(list.rawMessage).toBe("ListKeys needs the watch or admin role; this token has the lease role");
  });

  it("leaves health open", async () => {
    const health = createClient(Health, transport(tokens));
    const res = await health.check({});
    expect(res.status).toBe(HealthCheckResponse_ServingStatus.SERVING);
  });

  it("lets everything through when no token is configured", async () => {
    const open = calls(new TokenStore([]));
    for (const rpc of Object.keys(open)) expect(await codeOf(open[rpc]({}))).toBe("ok");
  });
});
