/**
 * Every way a client reaches keypool, over real sockets: on the main port connect-node over gRPC,
 * gRPC-Web and Connect (HTTP/2 and HTTP/1.1) and plain HTTP/1.1 Connect JSON; on both the main
 * and the native gRPC port, connect-node over gRPC and an independent grpc-js client built from
 * the .proto files. Each against one keypool and against two replicas on one Redis, each call
 * sent to a replica in turn (test/support/deployments.ts).
 */
import * as http from "node:http";
import { durationFromMs, timestampMs } from "@bufbuild/protobuf/wkt";
import type * as grpc from "@grpc/grpc-js";
import { KeyAdminService, KeyPoolService, KeyState, Provider } from "../../gen/ts/keypool/v1/keypool_pb";
import { connectClient, grpcJsClient, grpcJsUnary, loadGrpcJsPackage, type ProtocolName } from "../support/clients";
import { PORTS, portOf, urlOf, type PortName } from "../support/ports";
import { DEPLOYMENTS, startDeployedServer, type DeployedServer } from "../support/deployments";
import { advanceUntilSettled, testKey } from "../support/test-server";

const OPENAI_KEY = testKey("openai", 1);

jest.setTimeout(60_000);

describe.each(DEPLOYMENTS)("%s", (deployment) => {
  describe.each<[ProtocolName, "1.1" | "2", PortName]>([
    ["grpc", "2", "main"],
    ["grpc-web", "2", "main"],
    ["grpc-web", "1.1", "main"],
    ["connect", "2", "main"],
    ["connect", "1.1", "main"],
    ["grpc", "2", "native"],
  ])("connect-node client over %s (HTTP/%s) on the %s port", (protocol, httpVersion, port) => {
    let t: DeployedServer;
    beforeEach(async () => {
      t = await startDeployedServer(deployment, { keys: [{ provider: "openai", key: OPENAI_KEY }] });
    });
    afterEach(() => t.close());

    it("leases, reports, records usage and lists keys", async () => {
      const pool = connectClient(KeyPoolService, urlOf(t, port), protocol, httpVersion);
      const lease = await pool.lease({ model: "gpt-3.5-turbo" });
      expect(lease.key).toBe(OPENAI_KEY);
      expect(lease.keyHash).toMatch(/^oai-[0-9a-f]{16}$/);
      expect(lease.provider).toBe(Provider.OPENAI);
      expect(lease.modelFamily).toBe("turbo");
      expect(lease.leaseId).not.toBe("");
      expect(timestampMs(lease.leaseExpiresAt!)).toBe(t.clock.now() + 600_000);

      const report = await pool.reportRateLimit({
        keyHash: lease.keyHash,
        statusCode: 429,
        headers: { "retry-after": "7" },
        leaseId: lease.leaseId,
      });
      expect(timestampMs(report.readyAt!)).toBe(t.clock.now() + 7000);

      await pool.incrementUsage({
        keyHash: lease.keyHash,
        model: "gpt-3.5-turbo",
        inputTokens: 120n,
        outputTokens: 30n,
        leaseId: lease.leaseId,
      });

      const lockout = await pool.getLockoutPeriod({ model: "gpt-3.5-turbo" });
      expect(lockout.noActiveKeys).toBe(false);
      expect(lockout.lockout?.seconds).toBe(7n);

      const { keys } = await pool.listKeys({});
      expect(keys).toHaveLength(1);
      const [key] = keys;
      expect(key.keyHash).toBe(lease.keyHash);
      expect(key.state).toBe(KeyState.ACTIVE);
      expect(key.leaseCount).toBe(1n);
      expect(key.inFlight).toBe(0);
      expect(key.promptCount).toBe(1n);
      expect(key.usage.turbo).toMatchObject({ inputTokens: 120n, outputTokens: 30n, prompts: 1n });
      expect(timestampMs(key.rateLimitedAt!)).toBe(t.clock.now());
      expect(timestampMs(key.cooldownUntil!)).toBe(t.clock.now() + 7000);
      expect(key.lastChecked).toBeUndefined();
      // No RPC but Lease returns a secret.
      expect(JSON.stringify(keys, (_k, v: unknown) => (typeof v === "bigint" ? String(v) : v))).not.toContain(OPENAI_KEY);
    });

    it("administers keys", async () => {
      const admin = connectClient(KeyAdminService, urlOf(t, port), protocol, httpVersion);
      const added = await admin.addKeys({
        provider: Provider.ANTHROPIC,
        keys: [{ key: testKey("anthropic", 1) }, { key: testKey("anthropic", 1) }],
      });
      expect(added.added).toBe(1);
      expect(added.duplicates).toBe(1);
      expect(added.keyHashes).toHaveLength(2);
      expect(added.keyHashes[0]).toMatch(/^ant-/);
      expect(added.keyHashes[1]).toBe(added.keyHashes[0]);

      const disabled = await admin.disableKey({ keyHash: added.keyHashes[0], state: KeyState.OVER_QUOTA, reason: "billing" });
      expect(disabled.key?.state).toBe(KeyState.OVER_QUOTA);
      expect(disabled.key?.stateReason).toContain("billing");
      const enabled = await admin.enableKey({ keyHash: added.keyHashes[0] });
      expect(enabled.key?.state).toBe(KeyState.ACTIVE);
      await admin.removeKey({ keyHash: added.keyHashes[0] });

      const pool = connectClient(KeyPoolService, urlOf(t, port), protocol, httpVersion);
      const { keys } = await pool.listKeys({ provider: Provider.ANTHROPIC });
      expect(keys).toHaveLength(0);
    });
  });

  describe.each(PORTS)("on the %s port", (port) => {
    describe("filters of ListKeys", () => {
      it("match pool.listKeys: provider and model families", async () => {
        const t = await startDeployedServer(deployment, {
          keys: [
            { provider: "openai", key: testKey("openai", 1) },
            { provider: "openai", key: testKey("openai", 2), modelFamilies: ["gpt4o"] },
            { provider: "anthropic", key: testKey("anthropic", 1) },
          ],
        });
        try {
          const client = connectClient(KeyPoolService, urlOf(t, port));
          const hashes = async (req: { provider?: Provider; modelFamilies?: string[] }) =>
            (await client.listKeys(req)).keys.map((k) => k.keyHash);
          expect(await hashes({})).toEqual((await t.pool.listKeys()).map((k) => k.keyHash));
          expect(await hashes({})).toHaveLength(3);
          expect(await hashes({ provider: Provider.OPENAI })).toEqual((await t.pool.listKeys({ provider: "openai" })).map((k) => k.keyHash));
          expect(await hashes({ provider: Provider.OPENAI })).toHaveLength(2);
          expect(await hashes({ modelFamilies: ["gpt4o"] })).toHaveLength(1);
          expect(await hashes({ modelFamilies: ["gpt4o", "claude"] })).toHaveLength(2);
        } finally {
          await t.close();
        }
      });
    });

    describe("Lease max_wait", () => {
      it("waits for a key to become ready", async () => {
        const t = await startDeployedServer(deployment, { keys: [{ provider: "openai", key: OPENAI_KEY }] });
        try {
          const client = connectClient(KeyPoolService, urlOf(t, port));
          await client.lease({ model: "gpt-3.5-turbo" }); // the key is now held for the reuse delay
          // Time moves on in small steps until the reuse delay is over and the waiting call is served.
          const lease = await advanceUntilSettled(
            t.manualClock!,
            client.lease({ model: "gpt-3.5-turbo", maxWait: durationFromMs(5000) }),
            100,
          );
          expect(lease.key).toBe(OPENAI_KEY);
        } finally {
          await t.close();
        }
      });
    });
  });

  describe("plain HTTP/1.1 with Connect JSON (what curl sends)", () => {
    it("lists keys", async () => {
      const t = await startDeployedServer(deployment, { keys: [{ provider: "openai", key: OPENAI_KEY }] });
      try {
        const { status, body, contentType } = await new Promise<{ status: number; body: string; contentType: string }>(
          (resolve, reject) => {
            const req = http.request(
              {
                host: "127.0.0.1",
                port: t.port,
                method: "POST",
                path: "/keypool.v1.KeyPoolService/ListKeys",
                headers: { "content-type": "application/json" },
                agent: false,
              },
              (res) => {
                let text = "";
                res.setEncoding("utf8");
                res.on("data", (d: string) => (text += d));
                res.on("end", () => resolve({ status: res.statusCode!, body: text, contentType: String(res.headers["content-type"]) }));
              },
            );
            req.on("error", reject);
            req.end("{}");
          },
        );
        expect(status).toBe(200);
        expect(contentType).toContain("application/json");
        const json = JSON.parse(body) as { keys: { keyHash: string; provider: string; state: string; modelFamilies: string[] }[] };
        expect(json.keys).toHaveLength(1);
        expect(json.keys[0]).toMatchObject({ provider: "PROVIDER_OPENAI", state: "KEY_STATE_ACTIVE", modelFamilies: ["turbo", "gpt4"] });
        expect(body).not.toContain(OPENAI_KEY);
      } finally {
        await t.close();
      }
    });
  });

  describe.each(PORTS)("on the %s port", (port) => {
    describe("@grpc/grpc-js client built from the .proto (no shared code)", () => {
      let t: DeployedServer;
      let pool: grpc.Client;
      beforeAll(async () => {
        t = await startDeployedServer(deployment, { keys: [{ provider: "openai", key: OPENAI_KEY }] });
        pool = grpcJsClient(loadGrpcJsPackage().KeyPoolService, portOf(t, port));
      });
      afterAll(async () => {
        pool.close();
        await t.close();
      });

      it("leases, reports, records usage and lists keys", async () => {
        const lease = await grpcJsUnary<{ key: string; keyHash: string; provider: string; modelFamily: string; leaseId: string }>(
          pool,
          "Lease",
          { model: "gpt-3.5-turbo" },
        );
        expect(lease).toMatchObject({ key: OPENAI_KEY, provider: "PROVIDER_OPENAI", modelFamily: "turbo" });
        await grpcJsUnary(pool, "ReportRateLimit", { keyHash: lease.keyHash, statusCode: 200, headers: { "x-ratelimit-remaining-requests": "5" } });
        await grpcJsUnary(pool, "IncrementUsage", { keyHash: lease.keyHash, model: "gpt-3.5-turbo", inputTokens: "10", outputTokens: "2", leaseId: lease.leaseId });
        const list = await grpcJsUnary<{ keys: { keyHash: string; promptCount: string; usage: Record<string, { inputTokens: string }> }[] }>(
          pool,
          "ListKeys",
          {},
        );
        expect(list.keys).toHaveLength(1);
        expect(list.keys[0]).toMatchObject({ keyHash: lease.keyHash, promptCount: "1" });
        expect(list.keys[0].usage.turbo.inputTokens).toBe("10");
      });
    });
  });
});
