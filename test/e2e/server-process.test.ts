/**
 * The built server as operators run it (`node dist/src/main.js`): configuration from the
 * environment, start-up errors that name the variable, no secret in the logs, and SIGTERM, SIGINT
 * and SIGHUP with open streams and in-flight Lease waits on both ports (main and
 * KEYPOOL_GRPC_PORT): clients see UNAVAILABLE, the process exits 0 within 5 s.
 */
import { durationFromMs } from "@bufbuild/protobuf/wkt";
import * as grpc from "@grpc/grpc-js";
import { Code, ConnectError } from "@connectrpc/connect";
import { Health, HealthCheckResponse_ServingStatus as ServingStatus } from "../../gen/ts/grpc/health/v1/health_pb";
import { KeyPoolService } from "../../gen/ts/keypool/v1/keypool_pb";
import { ensureBuilt, runServerExpectingFailure, spawnServer } from "../support/child-server";
import { connectClient, grpcJsClient, grpcJsUnary, loadGrpcJsPackage } from "../support/clients";

const OPENAI_SECRET = "sk-process-test-openai-0001";
const ANTHROPIC_SECRET = "sk-ant-process-test-0001";

// Child processes start slowly on a loaded machine; building dist/ (when stale) is slower still.
jest.setTimeout(60_000);
beforeAll(() => ensureBuilt(), 180_000);

describe("start-up", () => {
  it("serves keys from the environment and logs counts, never secrets", async () => {
    const server = await spawnServer({ OPENAI_KEY: ` ${OPENAI_SECRET} ,,${OPENAI_SECRET}`, ANTHROPIC_KEY: ANTHROPIC_SECRET });
    try {
      const listening = server.logs.find((l) => l.msg === "keypool listening");
      expect(listening).toMatchObject({ host: "127.0.0.1", port: server.port, keys: { openai: 1, anthropic: 1 } });
      const client = connectClient(KeyPoolService, server.url);
      expect((await client.listKeys({})).keys).toHaveLength(2);
      const lease = await client.lease({ model: "claude-3-5-haiku-latest" });
      expect(lease.key).toBe(ANTHROPIC_SECRET);
    } finally {
      await server.stop();
    }
    const { stdout, stderr } = server.output();
    expect(stdout + stderr).not.toContain(OPENAI_SECRET);
    expect(stdout + stderr).not.toContain(ANTHROPIC_SECRET);
  });

  it("warns about an unknown KEYPOOL_* variable, naming the nearest known one, and starts", async () => {
    const server = await spawnServer({ KEYPOOL_REUSE_DELAYS: "2s" });
    try {
      const warning = server.logs.find((l) => l.variable === "KEYPOOL_REUSE_DELAYS");
      expect(warning).toMatchObject({ level: 40, nearest: "KEYPOOL_REUSE_DELAY" });
      expect(String(warning?.msg)).toContain("did you mean KEYPOOL_REUSE_DELAY?");
      expect(server.logs.some((l) => l.msg === "keypool listening")).toBe(true);
    } finally {
      await server.stop();
    }
  });

  it.each([
    ["KEYPOOL_PORT", "not-a-port"],
    ["KEYPOOL_GRPC_PORT", "70000"],
    ["KEYPOOL_LEASE_TTL", "forever"],
    ["KEYPOOL_LOG_LEVEL", "chatty"],
    ["ALLOWED_MODEL_FAMILIES", "no-such-family"],
    ["KEYPOOL_TLS_CERT", "/nonexistent/cert.pem"],
  ])("stops with an error naming %s when it is bad", async (variable, value) => {
    const env: Record<string, string> = { [variable]: value };
    if (variable === "KEYPOOL_TLS_CERT") env.KEYPOOL_TLS_KEY = "/nonexistent/key.pem";
    const { code, stderr } = await runServerExpectingFailure(env);
    expect(code).not.toBe(0);
    expect(stderr).toContain(variable);
  });
});

describe.each(["SIGTERM", "SIGINT", "SIGHUP"] as const)("%s with open streams and in-flight Lease waits", (signal) => {
  it("ends them with UNAVAILABLE and exits 0 within 5 s", async () => {
    const server = await spawnServer({ OPENAI_KEY: OPENAI_SECRET, KEYPOOL_REUSE_DELAY: "1m", KEYPOOL_GRPC_PORT: "0" });
    const grpcPort = server.logs.find((l) => l.msg === "keypool listening")?.grpcPort as number;
    expect(grpcPort).toBeGreaterThan(0);
    const pool = connectClient(KeyPoolService, server.url);
    await pool.lease({ model: "gpt-3.5-turbo" }); // the only key is now held for a minute

    // An open stream: health Watch.
    const health = connectClient(Health, server.url);
    const statuses: ServingStatus[] = [];
    let firstStatus!: () => void;
    const gotFirst = new Promise<void>((resolve) => (firstStatus = resolve));
    const watchEnded = (async () => {
      try {
        for await (const res of health.watch({ service: "" })) {
          statuses.push(res.status);
          firstStatus();
        }
        return undefined;
      } catch (err) {
        return ConnectError.from(err);
      }
    })();
    await gotFirst;

    // In-flight waits: connect-node on the main port, grpc-js on the native gRPC port.
    const connectWait = pool.lease({ model: "gpt-3.5-turbo", maxWait: durationFromMs(60_000) }).then(
      () => undefined,
      (err: unknown) => ConnectError.from(err),
    );
    const grpcJs = grpcJsClient(loadGrpcJsPackage().KeyPoolService, grpcPort);
    const grpcJsWait = grpcJsUnary(grpcJs, "Lease", { model: "gpt-3.5-turbo", maxWait: { seconds: 60 } }).then(
      () => undefined,
      (err: grpc.ServiceError) => err,
    );
    // Both waits are queued once a later call has been answered on the same connections.
    await pool.getLockoutPeriod({ model: "gpt-3.5-turbo" });
    await grpcJsUnary(grpcJs, "GetLockoutPeriod", { model: "gpt-3.5-turbo" });

    const signalled = Date.now();
    const exit = await server.stop(signal);
    const elapsed = Date.now() - signalled;

    expect(exit).toEqual({ code: 0, signal: null });
    expect(elapsed).toBeLessThan(5000);
    expect(statuses).toEqual([ServingStatus.SERVING, ServingStatus.NOT_SERVING]);
    expect((await watchEnded)?.code).toBe(Code.Unavailable);
    expect((await connectWait)?.code).toBe(Code.Unavailable);
    expect((await grpcJsWait)?.code).toBe(grpc.status.UNAVAILABLE);
    grpcJs.close();
    expect(server.logs.map((l) => l.msg)).toEqual(expect.arrayContaining(["shutting down", "stopped"]));
  });
});
