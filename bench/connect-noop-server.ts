/**
 * keypool's own stack with nothing in it: @connectrpc/connect-node on node:http2 (h2c), serving
 * Lease with a fixed response (the size of keypool's) and Health/Check with SERVING, with no
 * interceptors, no pool and no listener sniffing. bench/run.ts puts the same load through it to
 * split the gap between keypool and the grpc-js no-op server into "the Connect stack" and
 * "keypool's own work". Listens on 127.0.0.1, port 0, and prints `LISTENING <port>`.
 */
import * as http2 from "node:http2";
import { create } from "@bufbuild/protobuf";
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import type { ConnectRouter } from "@connectrpc/connect";
import { connectNodeAdapter } from "@connectrpc/connect-node";
import { Health, HealthCheckResponse_ServingStatus } from "../gen/ts/grpc/health/v1/health_pb";
import { KeyPoolService, LeaseResponseSchema, Provider } from "../gen/ts/keypool/v1/keypool_pb";

const leaseResponse = create(LeaseResponseSchema, {
  key: "sk-bench-0000000000000000000000000000000000000000000",
  keyHash: "oai-0123456789abcdef",
  provider: Provider.OPENAI,
  modelFamily: "turbo",
  organizationId: "",
  leaseId: "lease-0000000000000001",
  leaseExpiresAt: timestampFromMs(Date.now() + 600_000),
});

const routes = (router: ConnectRouter) => {
  router.service(KeyPoolService, { lease: () => leaseResponse });
  router.service(Health, { check: () => ({ status: HealthCheckResponse_ServingStatus.SERVING }) });
};

const server = http2.createServer(connectNodeAdapter({ routes }));
server.listen(Number(process.argv[2] ?? 0), "127.0.0.1", () => {
  const address = server.address();
  process.stdout.write(`LISTENING ${typeof address === "object" && address ? address.port : 0}\n`);
});
const stop = () => server.close(() => process.exit(0));
process.on("SIGTERM", stop);
process.on("SIGINT", stop);
