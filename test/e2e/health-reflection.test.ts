/**
 * grpc.health.v1 (Check, Watch through shutdown) and grpc.reflection v1/v1alpha, through
 * connect-node and through `buf curl`, which needs nothing but reflection to call Lease. Against
 * one keypool and against two replicas on one Redis, each call sent to a replica in turn
 * (test/support/deployments.ts), one deployment shared by the suite but for the shutdown test.
 */
import { execFile } from "node:child_process";
import * as path from "node:path";
import { promisify } from "node:util";
import { createFileRegistry, fromBinary } from "@bufbuild/protobuf";
import { FileDescriptorProtoSchema, FileDescriptorSetSchema } from "@bufbuild/protobuf/wkt";
import { create } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import { Health, HealthCheckResponse_ServingStatus as ServingStatus } from "../../gen/ts/grpc/health/v1/health_pb";
import { ServerReflection as ReflectionV1 } from "../../gen/ts/grpc/reflection/v1/reflection_pb";
import { ServerReflection as ReflectionV1Alpha } from "../../gen/ts/grpc/reflection/v1alpha/reflection_pb";
import { connectClient, grpcJsClient, grpcJsUnary, loadGrpcJsPackage } from "../support/clients";
import { PORTS, portOf, urlOf, type PortName } from "../support/ports";
import { DEPLOYMENTS, startDeployedServer, type DeployedServer } from "../support/deployments";
import { testKey } from "../support/test-server";

const run = promisify(execFile);
const BUF = path.resolve(__dirname, "../../node_modules/.bin/buf");
const SECRET = testKey("openai", 7);

const EXPECTED_SERVICES = [
  "grpc.health.v1.Health",
  "grpc.reflection.v1.ServerReflection",
  "grpc.reflection.v1alpha.ServerReflection",
  "keypool.v1.KeyAdminService",
  "keypool.v1.KeyPoolService",
];

jest.setTimeout(60_000);

describe.each(DEPLOYMENTS)("%s", (deployment) => {
  let t: DeployedServer;
  beforeAll(async () => {
    // Lease is called once per port and reflection protocol: no reuse delay between them.
    t = await startDeployedServer(deployment, { keys: [{ provider: "openai", key: SECRET }], pool: { reuseDelayMs: 0 } });
  });
  afterAll(() => t.close());

  describe.each(PORTS)("on the %s port", (port) => {
    describe("health", () => {
      it("Check answers SERVING for the server and each service, NOT_FOUND for unknown ones", async () => {
        const health = connectClient(Health, urlOf(t, port));
        for (const service of ["", "keypool.v1.KeyPoolService", "keypool.v1.KeyAdminService"]) {
          expect((await health.check({ service })).status).toBe(ServingStatus.SERVING);
        }
        await expect(health.check({ service: "nope.Service" })).rejects.toMatchObject({ code: Code.NotFound });

        const grpcJs = grpcJsClient(loadGrpcJsPackage().Health, portOf(t, port));
        expect(await grpcJsUnary(grpcJs, "Check", { service: "" })).toEqual({ status: "SERVING" });
        grpcJs.close();
      });

      it("Watch streams SERVING, then NOT_SERVING at shutdown, then ends with UNAVAILABLE", async () => {
        // A deployment of its own: this one shuts down.
        const t = await startDeployedServer(deployment);
        const health = connectClient(Health, urlOf(t, port));
        const seen: ServingStatus[] = [];
        let ended: ConnectError | undefined;
        const watching = (async () => {
          try {
            for await (const res of health.watch({ service: "keypool.v1.KeyPoolService" })) {
              seen.push(res.status);
              if (seen.length === 1) void t.close();
            }
          } catch (err) {
            ended = ConnectError.from(err);
          }
        })();
        await watching;
        expect(seen).toEqual([ServingStatus.SERVING, ServingStatus.NOT_SERVING]);
        expect(ended?.code).toBe(Code.Unavailable);
      });

      it("Watch reports SERVICE_UNKNOWN for an unknown service and stays open", async () => {
        const abort = new AbortController();
        const health = connectClient(Health, urlOf(t, port));
        const stream = health.watch({ service: "nope.Service" }, { signal: abort.signal });
        const first = await stream[Symbol.asyncIterator]().next();
        expect(first.value?.status).toBe(ServingStatus.SERVICE_UNKNOWN);
        abort.abort();
      });
    });

    describe.each([
      ["v1", ReflectionV1],
      ["v1alpha", ReflectionV1Alpha],
    ] as const)("reflection %s", (_name, service) => {
      async function ask(requests: object[]) {
        const client = connectClient(service as typeof ReflectionV1, urlOf(t, port));
        async function* input() {
          for (const r of requests) yield r;
        }
        const out = [];
        for await (const res of client.serverReflectionInfo(input() as AsyncIterable<never>)) out.push(res);
        return out;
      }

      it("lists services, serves files with their dependencies, answers NOT_FOUND for unknown names", async () => {
        const [list, byName, bySymbol, byMethod, unknownFile, unknownSymbol] = await ask([
          { messageRequest: { case: "listServices", value: "" } },
          { messageRequest: { case: "fileByFilename", value: "keypool/v1/keypool.proto" } },
          { messageRequest: { case: "fileContainingSymbol", value: "keypool.v1.KeyStatus" } },
          { messageRequest: { case: "fileContainingSymbol", value: "keypool.v1.KeyPoolService.Lease" } },
          { messageRequest: { case: "fileByFilename", value: "nope.proto" } },
          { messageRequest: { case: "fileContainingSymbol", value: "nope.Nope" } },
        ]);
        expect(list.messageResponse.case).toBe("listServicesResponse");
        const names = list.messageResponse.case === "listServicesResponse" ? list.messageResponse.value.service.map((s) => s.name) : [];
        expect(names.sort()).toEqual(EXPECTED_SERVICES);

        for (const res of [byName, bySymbol, byMethod]) {
          expect(res.messageResponse.case).toBe("fileDescriptorResponse");
          if (res.messageResponse.case !== "fileDescriptorResponse") continue;
          const files = res.messageResponse.value.fileDescriptorProto.map((b) => fromBinary(FileDescriptorProtoSchema, b));
          expect(files[0].name).toBe("keypool/v1/keypool.proto");
          expect(files.map((f) => f.name)).toEqual(
            expect.arrayContaining(["google/protobuf/duration.proto", "google/protobuf/timestamp.proto"]),
          );
          // What a client receives is enough to rebuild every type (dependencies first for the registry).
          const registry = createFileRegistry(create(FileDescriptorSetSchema, { file: [...files].reverse() }));
          expect(registry.getService("keypool.v1.KeyPoolService")?.methods.map((m) => m.name)).toContain("Lease");
          expect(registry.getMessage("keypool.v1.LeaseRequest")?.fields.map((f) => f.name)).toEqual(["model", "provider", "max_wait"]);
        }
        for (const res of [unknownFile, unknownSymbol]) {
          expect(res.messageResponse.case).toBe("errorResponse");
          if (res.messageResponse.case === "errorResponse") expect(res.messageResponse.value.errorCode).toBe(Code.NotFound);
        }
        expect(byName.originalRequest?.messageRequest.value).toBe("keypool/v1/keypool.proto");
      });
    });

    describe.each(["grpc-v1", "grpc-v1alpha"])("buf curl through reflection (%s)", (reflectProtocol) => {
      const bufCurl = (...args: string[]) =>
        run(BUF, ["curl", "--protocol", "grpc", "--http2-prior-knowledge", "--reflect", "--reflect-protocol", reflectProtocol, ...args], {
          timeout: 20_000,
        });

      it("lists services and methods", async () => {
        const services = await bufCurl("--list-services", urlOf(t, port));
        expect(services.stdout.trim().split("\n").sort()).toEqual(EXPECTED_SERVICES);
        const methods = await bufCurl("--list-methods", urlOf(t, port));
        expect(methods.stdout).toContain("keypool.v1.KeyPoolService/Lease");
        expect(methods.stdout).toContain("keypool.v1.KeyPoolService/ListKeys");
      });

      it("calls Lease and ListKeys", async () => {
        const lease = await bufCurl("-d", '{"model":"gpt-3.5-turbo"}', `${urlOf(t, port)}/keypool.v1.KeyPoolService/Lease`);
        expect(JSON.parse(lease.stdout)).toMatchObject({ key: SECRET, provider: "PROVIDER_OPENAI", modelFamily: "turbo" });
        const list = await bufCurl("-d", "{}", `${urlOf(t, port)}/keypool.v1.KeyPoolService/ListKeys`);
        expect(JSON.parse(list.stdout).keys).toHaveLength(1);
      });
    });
  });

  // Health is each process's own: this asks one keypool process directly (a replica, behind the balancer).
  describe("one health state for both ports", () => {
    it("a service turned NOT_SERVING reads NOT_SERVING on both ports, and watchers on both see it", async () => {
      const one = t.server;
      const abort = new AbortController();
      try {
        const firstTwo = (port: PortName) =>
          (async () => {
            const seen: ServingStatus[] = [];
            const health = connectClient(Health, urlOf(one, port));
            for await (const res of health.watch({ service: "keypool.v1.KeyPoolService" }, { signal: abort.signal })) {
              seen.push(res.status);
              if (seen.length === 2) break;
            }
            return seen;
          })();
        const watches = PORTS.map(firstTwo);
        // Both watches have their first answer before the change.
        for (const port of PORTS) {
          expect((await connectClient(Health, urlOf(one, port)).check({ service: "keypool.v1.KeyPoolService" })).status).toBe(ServingStatus.SERVING);
        }
        await new Promise((resolve) => setTimeout(resolve, 100));
        one.health.set("keypool.v1.KeyPoolService", ServingStatus.NOT_SERVING);
        for (const port of PORTS) {
          expect((await connectClient(Health, urlOf(one, port)).check({ service: "keypool.v1.KeyPoolService" })).status).toBe(ServingStatus.NOT_SERVING);
          expect((await connectClient(Health, urlOf(one, port)).check({ service: "" })).status).toBe(ServingStatus.SERVING);
        }
        for (const seen of await Promise.all(watches)) expect(seen).toEqual([ServingStatus.SERVING, ServingStatus.NOT_SERVING]);
      } finally {
        abort.abort();
        one.health.set("keypool.v1.KeyPoolService", ServingStatus.SERVING);
      }
    });
  });
});
