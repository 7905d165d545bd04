/**
 * Every RPC against every role, no token and a wrong token, over gRPC (the independent grpc-js
 * client, on the main and on the native gRPC port) and Connect (connect-node over HTTP/1.1, JSON): the right status code each time, on a
 * real server with real sockets. Health and reflection need no token. Against one keypool and
 * against two replicas on one Redis, each call sent to a replica in turn (test/support/deployments.ts).
 */
import * as grpc from "@grpc/grpc-js";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import { KeyAdminService, KeyPoolService, Provider } from "../../gen/ts/keypool/v1/keypool_pb";
import { ServerReflection } from "../../gen/ts/grpc/reflection/v1/reflection_pb";
import { grpcJsClient, loadGrpcJsPackage } from "../support/clients";
import { PORTS, portOf } from "../support/ports";
import { startAccessDeployment, type AccessDeployment } from "../support/access-server";
import { DEPLOYMENTS } from "../support/deployments";

const TOKENS = { lease: "tok-lease-7f3a9c", watch: "tok-watch-b81e04", admin: "tok-admin-52d6aa" };
const ENV = { KEYPOOL_TOKENS: `lease:${TOKENS.lease},watch:${TOKENS.watch},admin:${TOKENS.admin}` };
const MODEL = "gpt-4o-mini";
const PROVIDER_KEY = "sk-access-test-main-0001";
const SPARE_KEY = "sk-access-test-spare-0002";

type Who = "none" | "wrong" | keyof typeof TOKENS;
type Outcome = "OK" | "UNAUTHENTICATED" | "PERMISSION_DENIED";

const ALLOWED: Record<keyof typeof TOKENS, string[]> = {
  lease: ["Lease", "ReportRateLimit", "IncrementUsage", "GetLockoutPeriod"],
  watch: ["WatchKeys", "ListKeys", "GetLockoutPeriod"],
  admin: ["Lease", "ReportRateLimit", "IncrementUsage", "GetLockoutPeriod", "WatchKeys", "ListKeys",
    "AddKeys", "RemoveKey", "DisableKey", "EnableKey"],
};
const RPCS = ALLOWED.admin;

function expected(rpc: string, who: Who): Outcome {
  if (who === "none" || who === "wrong") return "UNAUTHENTICATED";
  return ALLOWED[who].includes(rpc) ? "OK" : "PERMISSION_DENIED";
}

function authHeader(who: Who): string | undefined {
  if (who === "none") return undefined;
  if (who === "wrong") return "Bearer tok-admin-52d6ab"; // one character off the admin token
  return `Bearer ${TOKENS[who]}`;
}

jest.setTimeout(60_000);

describe.each(DEPLOYMENTS)("%s", (deployment) => {
  let srv: AccessDeployment;
  let mainHash: string;
  let spareHash: string;

  beforeAll(async () => {
    srv = await startAccessDeployment(deployment, {
      env: ENV,
      pool: { reuseDelayMs: 0 },
      keys: [{ provider: "openai", key: PROVIDER_KEY, modelFamilies: ["turbo"] }],
    });
    mainHash = (await srv.pool.listKeys())[0]!.keyHash;
    spareHash = (await srv.pool.addKeys([{ provider: "openai", key: SPARE_KEY, modelFamilies: ["gpt4"] }])).keyHashes[0]!;
  });
  afterAll(() => srv.close());

  /** RemoveKey needs a key to remove: put the spare back before each call. */
  async function ensureSpare() {
    if (!(await srv.pool.listKeys()).some((k) => k.keyHash === spareHash)) {
      await srv.pool.addKeys([{ provider: "openai", key: SPARE_KEY, modelFamilies: ["gpt4"] }]);
    }
  }

  // ------------------------------------------------------------------ gRPC (grpc-js)

  const STATUS_NAME: Record<number, Outcome | string> = {
    [grpc.status.OK]: "OK",
    [grpc.status.UNAUTHENTICATED]: "UNAUTHENTICATED",
    [grpc.status.PERMISSION_DENIED]: "PERMISSION_DENIED",
  };

  function grpcUnary(client: grpc.Client, method: string, request: object, md: grpc.Metadata): Promise<grpc.ServiceError | null> {
    return new Promise((resolve) => {
      const fn = (client as unknown as Record<string, Function>)[method].bind(client);
      fn(request, md, { deadline: Date.now() + 5000 }, (err: grpc.ServiceError | null) => resolve(err));
    });
  }

  function grpcWatchFirst(client: grpc.Client, md: grpc.Metadata): Promise<grpc.ServiceError | null> {
    return new Promise((resolve) => {
      const call = (client as unknown as Record<string, Function>).WatchKeys.call(client, {}, md) as grpc.ClientReadableStream<unknown>;
      let gotData = false;
      call.on("data", () => {
        gotData = true;
        call.cancel();
      });
      call.on("error", (err: grpc.ServiceError) => resolve(gotData && err.code === grpc.status.CANCELLED ? null : err));
      call.on("end", () => resolve(null));
    });
  }

  describe.each(PORTS)("gRPC (grpc-js) on the %s port: every RPC × every caller", (port) => {
    const pkg = loadGrpcJsPackage();
    let pool: grpc.Client;
    let admin: grpc.Client;
    beforeAll(() => {
      pool = grpcJsClient(pkg.KeyPoolService, portOf(srv, port));
      admin = grpcJsClient(pkg.KeyAdminService, portOf(srv, port));
    });
    afterAll(() => {
      pool.close();
      admin.close();
    });

    const call = async (rpc: string, md: grpc.Metadata): Promise<grpc.ServiceError | null> => {
      switch (rpc) {
        case "Lease": return grpcUnary(pool, rpc, { model: MODEL }, md);
        case "ReportRateLimit": return grpcUnary(pool, rpc, { keyHash: mainHash, statusCode: 200 }, md);
        case "IncrementUsage": return grpcUnary(pool, rpc, { keyHash: mainHash, model: MODEL, inputTokens: 3, outputTokens: 4 }, md);
        case "GetLockoutPeriod": return grpcUnary(pool, rpc, { model: MODEL }, md);
        case "ListKeys": return grpcUnary(pool, rpc, {}, md);
        case "WatchKeys": return grpcWatchFirst(pool, md);
        case "AddKeys": return grpcUnary(admin, rpc, { provider: "PROVIDER_OPENAI", keys: [{ key: "sk-access-added-0003" }] }, md);
        case "RemoveKey": await ensureSpare(); return grpcUnary(admin, rpc, { keyHash: spareHash }, md);
        case "DisableKey": return grpcUnary(admin, rpc, { keyHash: spareHash, reason: "test" }, md);
        case "EnableKey": return grpcUnary(admin, rpc, { keyHash: spareHash }, md);
      }
      throw new Error(rpc);
    };

    const cases = RPCS.flatMap((rpc) => (["none", "wrong", "lease", "watch", "admin"] as Who[]).map((who) => [rpc, who, expected(rpc, who)] as const));
    it.each(cases)("%s as %s → %s", async (rpc, who, outcome) => {
      await ensureSpare();
      const md = new grpc.Metadata();
      const header = authHeader(who);
      if (header) md.set("authorization", header);
      const err = await call(rpc, md);
      expect(err ? (STATUS_NAME[err.code] ?? `code ${err.code}: ${err.details}`) : "OK").toBe(outcome);
      if (outcome === "UNAUTHENTICATED") expect(err!.details).not.toMatch(/tok-|lease|watch|admin/);
      if (outcome === "PERMISSION_DENIED") expect(err!.details).toMatch(/needs the (admin|watch or admin|lease or admin|lease or watch or admin) role/);
    });

    it("health needs no token", async () => {
      const health = grpcJsClient(pkg.Health, portOf(srv, port));
      const res = await new Promise<{ status: string }>((resolve, reject) =>
        (health as unknown as Record<string, Function>).Check({ service: "" }, (err: Error | null, r: { status: string }) => (err ? reject(err) : resolve(r))),
      );
      health.close();
      expect(res.status).toBe("SERVING");
    });
  });

  // ------------------------------------------------------------------ Connect (HTTP/1.1, JSON)

  describe("Connect (HTTP/1.1 JSON): every RPC × every caller", () => {
    const transport = () => createConnectTransport({ baseUrl: srv.url, httpVersion: "1.1", useBinaryFormat: false });
    const clients = () => ({ pool: createClient(KeyPoolService, transport()), admin: createClient(KeyAdminService, transport()) });

    const call = async (rpc: string, headers: Record<string, string>): Promise<void> => {
      const { pool, admin } = clients();
      const o = { headers, timeoutMs: 5000 };
      switch (rpc) {
        case "Lease": await pool.lease({ model: MODEL }, o); return;
        case "ReportRateLimit": await pool.reportRateLimit({ keyHash: mainHash, statusCode: 200 }, o); return;
        case "IncrementUsage": await pool.incrementUsage({ keyHash: mainHash, model: MODEL, inputTokens: 3n }, o); return;
        case "GetLockoutPeriod": await pool.getLockoutPeriod({ model: MODEL }, o); return;
        case "ListKeys": await pool.listKeys({}, o); return;
        case "WatchKeys": {
          const abort = new AbortController();
          const it = pool.watchKeys({}, { headers, signal: abort.signal })[Symbol.asyncIterator]();
          const first = await it.next();
          abort.abort();
          expect(first.value?.event.case).toBe("snapshot");
          return;
        }
        case "AddKeys": await admin.addKeys({ provider: Provider.OPENAI, keys: [{ key: "sk-access-added-0003" }] }, o); return;
        case "RemoveKey": await ensureSpare(); await admin.removeKey({ keyHash: spareHash }, o); return;
        case "DisableKey": await admin.disableKey({ keyHash: spareHash, reason: "test" }, o); return;
        case "EnableKey": await admin.enableKey({ keyHash: spareHash }, o); return;
      }
      throw new Error(rpc);
    };

    const cases = RPCS.flatMap((rpc) => (["none", "wrong", "lease", "watch", "admin"] as Who[]).map((who) => [rpc, who, expected(rpc, who)] as const));
    it.each(cases)("%s as %s → %s", async (rpc, who, outcome) => {
      await ensureSpare();
      const header = authHeader(who);
      let got: string = "OK";
      try {
        await call(rpc, header ? { authorization: header } : {});
      } catch (err) {
        const e = ConnectError.from(err);
        got = e.code === Code.Unauthenticated ? "UNAUTHENTICATED" : e.code === Code.PermissionDenied ? "PERMISSION_DENIED" : `${Code[e.code]}: ${e.rawMessage}`;
      }
      expect(got).toBe(outcome);
    });

    it("answers HTTP 401 and 403 to plain HTTP clients", async () => {
      const post = (headers: Record<string, string>) =>
        fetch(`${srv.url}/keypool.v1.KeyAdminService/AddKeys`, {
          method: "POST",
          headers: { "content-type": "application/json", ...headers },
          body: "{}",
        });
      expect((await post({})).status).toBe(401);
      expect((await post({ authorization: `Bearer ${TOKENS.lease}` })).status).toBe(403);
    });

    it("reflection needs no token", async () => {
      const reflection = createClient(ServerReflection, createConnectTransport({ baseUrl: srv.url, httpVersion: "2" }));
      const names: string[] = [];
      async function* requests() {
        yield { messageRequest: { case: "listServices" as const, value: "" } };
      }
      for await (const res of reflection.serverReflectionInfo(requests())) {
        if (res.messageResponse.case === "listServicesResponse") names.push(...res.messageResponse.value.service.map((s) => s.name));
      }
      expect(names).toContain("keypool.v1.KeyPoolService");
    });
  });
});
