/**
 * The error table of docs/errors.md, row by row, over real sockets; RESOURCE_EXHAUSTED's RetryInfo as
 * connect-node and grpc-js (reading grpc-status-details-bin by hand) decode it; Lease max_wait
 * ending at the deadline and on client cancel. (UNAUTHENTICATED and role rows: the access suite.)
 * Every case runs on the main port and on the native gRPC port, against one keypool and against
 * two replicas on one Redis, each call sent to a replica in turn (test/support/deployments.ts).
 */
import { fromBinary } from "@bufbuild/protobuf";
import { BinaryReader } from "@bufbuild/protobuf/wire";
import { durationFromMs, durationMs } from "@bufbuild/protobuf/wkt";
import * as grpc from "@grpc/grpc-js";
import { Code, ConnectError, type Client } from "@connectrpc/connect";
import { RetryInfoSchema } from "../../gen/ts/google/rpc/error_details_pb";
import { KeyAdminService, KeyPoolService, KeyState, Provider } from "../../gen/ts/keypool/v1/keypool_pb";
import { connectClient, grpcJsClient, grpcJsUnary, loadGrpcJsPackage } from "../support/clients";
import { PORTS, portOf, urlOf } from "../support/ports";
import { DEPLOYMENTS, startDeployedServer, type DeployedServer } from "../support/deployments";
import { advanceUntilSettled, startTestServer, systemClock, testKey } from "../support/test-server";

const SECRET = testKey("openai", 1);

async function codeOf(call: Promise<unknown>): Promise<{ code: Code; message: string; error: ConnectError }> {
  try {
    await call;
  } catch (err) {
    const error = ConnectError.from(err);
    return { code: error.code, message: error.rawMessage, error };
  }
  throw new Error("the call succeeded, but an error was expected");
}

/** google.rpc.Status from grpc-status-details-bin → the RetryInfo detail's delay in ms. */
function retryDelayFromStatusDetails(bytes: Buffer): number | undefined {
  const status = new BinaryReader(bytes);
  while (status.pos < status.len) {
    const [field, wireType] = status.tag();
    if (field !== 3) {
      status.skip(wireType);
      continue;
    }
    const any = new BinaryReader(status.bytes());
    let typeUrl = "";
    let value: Uint8Array = new Uint8Array();
    while (any.pos < any.len) {
      const [f, w] = any.tag();
      if (f === 1) typeUrl = any.string();
      else if (f === 2) value = any.bytes();
      else any.skip(w);
    }
    if (typeUrl === "type.googleapis.com/google.rpc.RetryInfo") {
      return durationMs(fromBinary(RetryInfoSchema, value).retryDelay!);
    }
  }
  return undefined;
}

jest.setTimeout(60_000);

describe.each(DEPLOYMENTS)("%s", (deployment) => {
  describe.each(PORTS)("on the %s port", (port) => {
    describe("docs/errors.md error table", () => {
      let t: DeployedServer;
      let pool: Client<typeof KeyPoolService>;
      let admin: Client<typeof KeyAdminService>;
      beforeAll(async () => {
        t = await startDeployedServer(deployment, {
          keys: [
            { provider: "openai", key: SECRET },
            { provider: "anthropic", key: testKey("anthropic", 1) },
          ],
          pool: { allowedFamilies: new Set(["turbo", "gpt4o", "claude", "claude-opus", "claude-sonnet", "claude-haiku"]) },
        });
        pool = connectClient(KeyPoolService, urlOf(t, port));
        admin = connectClient(KeyAdminService, urlOf(t, port));
      });
      afterAll(() => t.close());

      it("INVALID_ARGUMENT: model empty, over 256 bytes, or not mapped to a family", async () => {
        const empty = await codeOf(pool.lease({ model: "" }));
        expect(empty.code).toBe(Code.InvalidArgument);
        const long = await codeOf(pool.lease({ model: "gpt-4o" + "x".repeat(260) }));
        expect(long.code).toBe(Code.InvalidArgument);
        expect(long.message).toMatch(/256/);
        const unknown = await codeOf(pool.lease({ model: "no-such-model-xyz" }));
        expect(unknown.code).toBe(Code.InvalidArgument);
        expect(unknown.message).toContain("no-such-model-xyz");
        expect(unknown.message).toContain("KEYPOOL_MODEL_FAMILIES");
        expect((await codeOf(pool.getLockoutPeriod({ model: "no-such-model-xyz" }))).code).toBe(Code.InvalidArgument);
        expect((await codeOf(pool.incrementUsage({ keyHash: (await t.pool.listKeys())[0]!.keyHash, model: "no-such-model-xyz" }))).code).toBe(
          Code.InvalidArgument,
        );
      });

      it("INVALID_ARGUMENT: provider given but not matching the model", async () => {
        const r = await codeOf(pool.lease({ model: "claude-3-opus-20240229", provider: Provider.OPENAI }));
        expect(r.code).toBe(Code.InvalidArgument);
        expect(r.message).toContain("claude-3-opus-20240229");
        expect(r.message.toLowerCase()).toContain("openai");
      });

      it("PERMISSION_DENIED: the family is not allowed by the operator", async () => {
        const r = await codeOf(pool.lease({ model: "gpt-4" }));
        expect(r.code).toBe(Code.PermissionDenied);
        expect(r.message).toContain("gpt4");
      });

      it("FAILED_PRECONDITION: no ACTIVE key serves the family", async () => {
        const r = await codeOf(pool.lease({ model: "gpt-4o" }));
        expect(r.code).toBe(Code.FailedPrecondition);
        expect(r.message).toContain("gpt4o");
      });

      it("RESOURCE_EXHAUSTED with RetryInfo: every serving key waits and max_wait is 0", async () => {
        await pool.lease({ model: "claude-3-5-haiku-latest" });
        const r = await codeOf(pool.lease({ model: "claude-3-5-haiku-latest" }));
        expect(r.code).toBe(Code.ResourceExhausted);
        const [info] = r.error.findDetails(RetryInfoSchema);
        expect(durationMs(info.retryDelay!)).toBe(1000);
        expect(r.message).toMatch(/1000 ?ms|1 ?s/);
      });

      it("RESOURCE_EXHAUSTED with RetryInfo: max_wait ran out", async () => {
        const lease = await pool.lease({ model: "gpt-3.5-turbo" });
        await pool.reportRateLimit({ keyHash: lease.keyHash, statusCode: 429, headers: { "retry-after": "30" } });
        const started = t.clock.now();
        const r = await advanceUntilSettled(
          t.manualClock!,
          codeOf(pool.lease({ model: "gpt-3.5-turbo", maxWait: durationFromMs(5000) })),
          1000,
        );
        expect(r.code).toBe(Code.ResourceExhausted);
        const [info] = r.error.findDetails(RetryInfoSchema);
        // The cooldown's remainder when the wait ran out: 5 s or more after `started` (later when
        // the call reached the server after a step), and no later than the answer's arrival (the
        // clock may have stepped again while the answer was on its way on a loaded machine).
        expect(durationMs(info.retryDelay!)).toBeGreaterThanOrEqual(30_000 - (t.clock.now() - started));
        expect(durationMs(info.retryDelay!)).toBeLessThanOrEqual(25_000);
      });

      it("NOT_FOUND: unknown key_hash in a report or an admin call", async () => {
        const hash = "oai-0000000000000000";
        // One after another: each call's failure is awaited as soon as it is made.
        const calls: (() => Promise<unknown>)[] = [
          () => pool.reportRateLimit({ keyHash: hash, statusCode: 200 }),
          () => pool.incrementUsage({ keyHash: hash, model: "gpt-3.5-turbo", inputTokens: 1n }),
          () => admin.removeKey({ keyHash: hash }),
          () => admin.disableKey({ keyHash: hash }),
          () => admin.enableKey({ keyHash: hash }),
        ];
        for (const call of calls) {
          const r = await codeOf(call());
          expect(r.code).toBe(Code.NotFound);
          expect(r.message).toContain(hash);
        }
      });

      it("INVALID_ARGUMENT: token counts over 10^9, over 64 headers, a header over 8 KiB, a key over 1 KiB", async () => {
        const keyHash = (await t.pool.listKeys({ provider: "openai" }))[0]!.keyHash;
        const tokens = await codeOf(pool.incrementUsage({ keyHash, model: "gpt-3.5-turbo", inputTokens: 1_000_000_001n }));
        expect(tokens.code).toBe(Code.InvalidArgument);
        const outTokens = await codeOf(pool.incrementUsage({ keyHash, model: "gpt-3.5-turbo", outputTokens: 2n ** 63n }));
        expect(outTokens.code).toBe(Code.InvalidArgument);

        const headers: Record<string, string> = {};
        for (let i = 0; i < 65; i++) headers[`x-h-${i}`] = "1";
        const many = await codeOf(pool.reportRateLimit({ keyHash, statusCode: 200, headers }));
        expect(many.code).toBe(Code.InvalidArgument);
        expect(many.message).toContain("64");

        const big = await codeOf(pool.reportRateLimit({ keyHash, statusCode: 200, headers: { "x-big": "v".repeat(8 * 1024 + 1) } }));
        expect(big.code).toBe(Code.InvalidArgument);

        const longKey = SECRET + "k".repeat(1100);
        const key = await codeOf(admin.addKeys({ provider: Provider.OPENAI, keys: [{ key: longKey }] }));
        expect(key.code).toBe(Code.InvalidArgument);
        expect(key.message).toContain("1024");
        // The secret never appears in an error message.
        expect(key.message).not.toContain(SECRET);
      });

      it("INVALID_ARGUMENT: AddKeys without a provider, DisableKey to ACTIVE, negative max_wait", async () => {
        expect((await codeOf(admin.addKeys({ keys: [{ key: testKey("openai", 9) }] }))).code).toBe(Code.InvalidArgument);
        const keyHash = (await t.pool.listKeys({ provider: "openai" }))[0]!.keyHash;
        expect((await codeOf(admin.disableKey({ keyHash, state: KeyState.ACTIVE }))).code).toBe(Code.InvalidArgument);
        const negative = await codeOf(pool.lease({ model: "gpt-3.5-turbo", maxWait: { seconds: -1n, nanos: 0 } }));
        expect(negative.code).toBe(Code.InvalidArgument);
        expect(negative.message).toContain("max_wait");
      });

    });

    describe("grpc-js reads RESOURCE_EXHAUSTED's RetryInfo from grpc-status-details-bin", () => {
      it("decodes the retry delay", async () => {
        const t = await startDeployedServer(deployment, { keys: [{ provider: "openai", key: SECRET }] });
        const client = grpcJsClient(loadGrpcJsPackage().KeyPoolService, portOf(t, port));
        try {
          await grpcJsUnary(client, "Lease", { model: "gpt-3.5-turbo" });
          const error = await grpcJsUnary(client, "Lease", { model: "gpt-3.5-turbo" }).then(
            () => undefined,
            (err: grpc.ServiceError) => err,
          );
          expect(error?.code).toBe(grpc.status.RESOURCE_EXHAUSTED);
          const [details] = error!.metadata.get("grpc-status-details-bin") as Buffer[];
          expect(retryDelayFromStatusDetails(details)).toBe(1000);
        } finally {
          client.close();
          await t.close();
        }
      });
    });

    describe("Lease max_wait ends at the call's deadline and when the client cancels", () => {
      it("ends at the deadline: DEADLINE_EXCEEDED long before max_wait", async () => {
        const t = await startDeployedServer(deployment, { clock: systemClock, keys: [{ provider: "openai", key: SECRET }], pool: { reuseDelayMs: 60_000 } });
        try {
          const client = connectClient(KeyPoolService, urlOf(t, port));
          await client.lease({ model: "gpt-3.5-turbo" });
          const started = Date.now();
          const r = await codeOf(client.lease({ model: "gpt-3.5-turbo", maxWait: durationFromMs(30_000) }, { timeoutMs: 300 }));
          expect(r.code).toBe(Code.DeadlineExceeded);
          expect(Date.now() - started).toBeLessThan(5000);
        } finally {
          await t.close();
        }
      });

      it("ends when the client cancels: the waiter leaves, and the next request gets the key", async () => {
        const t = await startDeployedServer(deployment, { keys: [{ provider: "openai", key: SECRET }] });
        try {
          const client = connectClient(KeyPoolService, urlOf(t, port));
          await client.lease({ model: "gpt-3.5-turbo" });
          const abort = new AbortController();
          const waiting = codeOf(client.lease({ model: "gpt-3.5-turbo", maxWait: durationFromMs(60_000) }, { signal: abort.signal }));
          await new Promise((resolve) => setTimeout(resolve, 100));
          abort.abort();
          expect((await waiting).code).toBe(Code.Canceled);
          await new Promise((resolve) => setTimeout(resolve, 100));
          t.manualClock!.advance(1000);
          // Had the canceled waiter stayed queued, it would be served first and this would fail.
          const lease = await client.lease({ model: "gpt-3.5-turbo" });
          expect(lease.key).toBe(SECRET);
        } finally {
          await t.close();
        }
      });
    });
  });
});

// A bug is planted in the in-memory pool: one keypool is enough.
describe.each(PORTS)("on the %s port", (port) => {
  describe("a bug in a handler", () => {
    it("reaches the client as INTERNAL with a generic message, over gRPC and Connect", async () => {
      const t = await startTestServer();
      t.pool.keysAfter = () => {
        throw new TypeError(`cannot read properties of undefined (${SECRET})`);
      };
      try {
        for (const protocol of port === "main" ? (["grpc", "connect"] as const) : (["grpc"] as const)) {
          const r = await codeOf(connectClient(KeyPoolService, urlOf(t, port), protocol).listKeys({}));
          expect(r.code).toBe(Code.Internal);
          expect(r.message).not.toContain(SECRET);
          expect(r.message).not.toContain("undefined");
        }
      } finally {
        await t.close();
      }
    });
  });
});
