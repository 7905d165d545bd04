/**
 * A load generator built on the Connect client for Node (the stack a TypeScript proxy would use):
 * `connections` HTTP/2 sessions with `streamsPerConnection` calls in flight on each, `requests`
 * unary calls in total. Run as a child process (pinned apart from the server) by bench/run.ts;
 * prints one JSON line: throughput, latency percentiles and every non-OK gRPC code it saw.
 *
 *   tsx bench/connect-load.ts '{"port":50051,"method":"lease","requests":20000,"connections":4,"streamsPerConnection":16}'
 */
import { create } from "@bufbuild/protobuf";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { KeyPoolService, LeaseRequestSchema } from "../gen/ts/keypool/v1/keypool_pb";
import { Health, HealthCheckRequestSchema } from "../gen/ts/grpc/health/v1/health_pb";
import { summarize } from "./lib/stats";

export interface ConnectLoadConfig {
  port: number;
  method: "lease" | "check";
  model?: string;
  requests: number;
  /** Stop issuing calls after this long even if fewer than `requests` were made. */
  durationMs?: number;
  connections: number;
  streamsPerConnection: number;
  warmup?: number;
}

async function main(config: ConnectLoadConfig): Promise<void> {
  const baseUrl = `http://127.0.0.1:${config.port}`;
  const transports = Array.from({ length: config.connections }, () => createGrpcTransport({ baseUrl }));
  const leaseRequest = create(LeaseRequestSchema, { model: config.model ?? "gpt-3.5-turbo" });
  const checkRequest = create(HealthCheckRequestSchema, { service: "" });
  const calls = transports.map((transport) => {
    if (config.method === "lease") {
      const client = createClient(KeyPoolService, transport);
      return () => client.lease(leaseRequest);
    }
    const client = createClient(Health, transport);
    return () => client.check(checkRequest);
  });

  const errors: Record<string, number> = {};
  let firstError = "";
  const record = (e: unknown) => {
    const name = e instanceof ConnectError ? Code[e.code] : String(e);
    errors[name] = (errors[name] ?? 0) + 1;
    if (!firstError) firstError = e instanceof Error ? e.message : String(e);
  };

  // Warm up: open every session and let V8 optimise the paths before the clock starts.
  const warmup = config.warmup ?? Math.min(500, Math.ceil(config.requests / 10));
  let warmupCalls = 0;
  await Promise.all(calls.map(async (call) => {
    for (let i = 0; i < Math.ceil(warmup / calls.length); i++) {
      warmupCalls++;
      await call().catch(record);
    }
  }));
  if (Object.keys(errors).length > 0) throw new Error(`warm-up calls failed: ${JSON.stringify(errors)} ${firstError}`);

  const latencies = new Float64Array(config.requests);
  let issued = 0;
  let done = 0;
  const started = performance.now();
  const stopAt = started + (config.durationMs ?? Infinity);
  const worker = async (call: () => Promise<unknown>) => {
    while (issued < config.requests && performance.now() < stopAt) {
      issued++;
      const t0 = performance.now();
      try {
        await call();
      } catch (e) {
        record(e);
      }
      latencies[done++] = performance.now() - t0;
    }
  };
  const workers: Promise<void>[] = [];
  for (const call of calls) for (let s = 0; s < config.streamsPerConnection; s++) workers.push(worker(call));
  await Promise.all(workers);
  const elapsedS = (performance.now() - started) / 1000;
  const lat = summarize(latencies.subarray(0, done));
  const failed = Object.values(errors).reduce((a, b) => a + b, 0);
  process.stdout.write(
    JSON.stringify({ tool: "connect-node", warmupCalls, requests: done, succeeded: done - failed, failed, rps: done / elapsedS, p50Ms: lat.p50Ms, p99Ms: lat.p99Ms, errors, firstError }) + "\n",
  );
  process.exit(0);
}

if (require.main === module) {
  main(JSON.parse(process.argv[2] ?? "{}") as ConnectLoadConfig).catch((e) => {
    console.error(e);
    process.exit(1);
  });
}
