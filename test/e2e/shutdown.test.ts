/**
 * In-process shutdown (startServer's close): health answers NOT_SERVING, new calls on open
 * connections are refused with UNAVAILABLE, waiting Leases end with UNAVAILABLE, and the port is
 * released: on the main port and on the native gRPC port, which close together.
 */
import * as net from "node:net";
import { durationFromMs } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError } from "@connectrpc/connect";
import { Health, HealthCheckResponse_ServingStatus as ServingStatus } from "../../gen/ts/grpc/health/v1/health_pb";
import { KeyPoolService } from "../../gen/ts/keypool/v1/keypool_pb";
import { connectClient } from "../support/clients";
import { PORTS, portOf, urlOf } from "../support/ports";
import { startTestServer, testKey } from "../support/test-server";

const codeOf = (p: Promise<unknown>) => p.then(() => undefined, (err: unknown) => ConnectError.from(err).code);

it.each(PORTS)("on the %s port: refuses new calls, ends waits with UNAVAILABLE, and releases both ports", async (port) => {
  // A long notice period, so that the calls below surely arrive before connections close.
  const t = await startTestServer({
    keys: [{ provider: "openai", key: testKey("openai", 1) }],
    deps: { shutdownNoticeMs: 1500 },
  });
  const pool = connectClient(KeyPoolService, urlOf(t, port));
  const health = connectClient(Health, urlOf(t, port));
  await pool.lease({ model: "gpt-3.5-turbo" });
  const waiting = codeOf(pool.lease({ model: "gpt-3.5-turbo", maxWait: durationFromMs(60_000) }));
  await pool.listKeys({}); // the connection is open and the wait is in

  const closed = t.close();
  // During the notice period, the open connection still answers:
  expect((await health.check({ service: "" })).status).toBe(ServingStatus.NOT_SERVING);
  expect(await codeOf(pool.listKeys({}))).toBe(Code.Unavailable);
  expect(await waiting).toBe(Code.Unavailable);
  await closed;

  await expect(
    new Promise((resolve, reject) => net.connect(portOf(t, port), "127.0.0.1", () => resolve(undefined)).once("error", reject)),
  ).rejects.toThrow(/ECONNREFUSED/);
  for (const other of PORTS) {
    await expect(
      new Promise((resolve, reject) => net.connect(portOf(t, other), "127.0.0.1", () => resolve(undefined)).once("error", reject)),
    ).rejects.toThrow(/ECONNREFUSED/);
  }
});
