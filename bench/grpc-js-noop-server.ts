/**
 * The reference gRPC stack for Node: an @grpc/grpc-js server that answers Lease with a fixed
 * response of the usual size (no pool behind it) and Health/Check with SERVING. bench/run.ts puts
 * the same Lease load through it as through keypool, to show where keypool's transport stands.
 * Listens on 127.0.0.1, port 0 unless given, and prints `LISTENING <port>` when ready.
 */
import * as path from "node:path";
import * as grpc from "@grpc/grpc-js";
import * as protoLoader from "@grpc/proto-loader";

const PROTO_DIR = path.join(__dirname, "..", "proto");

function load(file: string): grpc.GrpcObject {
  const definition = protoLoader.loadSync(file, {
    includeDirs: [PROTO_DIR],
    keepCase: true,
    longs: String,
    enums: String,
    defaults: false,
    oneofs: true,
  });
  return grpc.loadPackageDefinition(definition);
}

type ServiceClient = { service: grpc.ServiceDefinition };

function main(): void {
  const keypool = load("keypool/v1/keypool.proto") as unknown as { keypool: { v1: Record<string, ServiceClient> } };
  const health = load("grpc/health/v1/health.proto") as unknown as { grpc: { health: { v1: Record<string, ServiceClient> } } };
  const server = new grpc.Server();

  // A plausible answer, the size of keypool's: a 51-character secret, a hash, ids and a timestamp.
  const leaseResponse = {
    key: "sk-bench-0000000000000000000000000000000000000000000",
    key_hash: "oai-0123456789abcdef",
    provider: "PROVIDER_OPENAI",
    model_family: "turbo",
    organization_id: "",
    lease_id: "lease-0000000000000001",
    lease_expires_at: { seconds: String(Math.floor(Date.now() / 1000) + 600), nanos: 0 },
  };
  const unimplemented: grpc.handleUnaryCall<unknown, unknown> = (_call, callback) =>
    callback({ code: grpc.status.UNIMPLEMENTED, details: "not in the no-op server" });

  const pool = keypool.keypool.v1.KeyPoolService.service;
  const handlers: grpc.UntypedServiceImplementation = {};
  for (const name of Object.keys(pool)) handlers[name] = unimplemented;
  handlers.Lease = ((_call, callback) => callback(null, leaseResponse)) as grpc.handleUnaryCall<unknown, unknown>;
  server.addService(pool, handlers);
  server.addService(health.grpc.health.v1.Health.service, {
    Check: ((_call, callback) => callback(null, { status: "SERVING" })) as grpc.handleUnaryCall<unknown, unknown>,
    Watch: ((call: grpc.ServerWritableStream<unknown, unknown>) => call.end()) as grpc.handleServerStreamingCall<unknown, unknown>,
  });

  const port = Number(process.argv[2] ?? 0);
  server.bindAsync(`127.0.0.1:${port}`, grpc.ServerCredentials.createInsecure(), (error, bound) => {
    if (error) {
      console.error(error);
      process.exit(1);
    }
    process.stdout.write(`LISTENING ${bound}\n`);
  });
  const stop = () => server.tryShutdown(() => process.exit(0));
  process.on("SIGTERM", stop);
  process.on("SIGINT", stop);
}

main();
