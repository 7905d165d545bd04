/**
 * WatchKeys over real sockets: every wire protocol, filters, removal, heartbeats, cancellation
 * and shutdown, on the main port and (over gRPC) on the native gRPC port; against one keypool and
 * against two replicas on one Redis, each call sent to a replica in turn (changes made through
 * one replica reach a stream on the other).
 */
import { equals } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import * as grpc from "@grpc/grpc-js";
import * as protoLoader from "@grpc/proto-loader";
import * as path from "node:path";
import { KeyState, KeyStatusSchema, Provider } from "../../gen/ts/keypool/v1/keypool_pb";
import { PORTS, portOf, urlOf } from "../support/ports";
import { DEPLOYMENTS } from "../support/deployments";
import { eventually, poolClient, PROTOCOLS_OF, startWatchDeployment, StreamView, type WatchDeployment } from "./watch-harness";

jest.setTimeout(60_000);

describe.each(DEPLOYMENTS)("%s", (deployment) => {
  describe.each(PORTS)("on the %s port", (port) => {
    describe("WatchKeys end to end", () => {
      let s: WatchDeployment;
      beforeEach(async () => {
        s = await startWatchDeployment(deployment, { keys: 3, hub: { coalesceMs: 20, heartbeatMs: 300 } });
      });
      afterEach(async () => {
        await s.close();
      });

      test.each(PROTOCOLS_OF[port])("over %s: snapshot, then updates and removals, in sequence", async (protocol) => {
        const client = poolClient(urlOf(s.server, port), protocol);
        const controller = new AbortController();
        const view = new StreamView();
        const done = view.consume(client.watchKeys({}, { signal: controller.signal }));
        await view.until(() => view.kinds.length >= 1);
        expect(view.kinds[0]).toBe("snapshot");
        expect([...view.keys.keys()]).toEqual([...s.keyHashes].sort());

        const lease = await client.lease({ model: "gpt-4o" });
        await view.until(() => view.keys.get(lease.keyHash)?.inFlight === 1);
        expect(view.keys.get(lease.keyHash)!.leaseCount).toBe(1n);
        // Never a secret on the stream.
        expect(JSON.stringify(view.keys.get(lease.keyHash), (_k, v) => (typeof v === "bigint" ? String(v) : v))).not.toContain(lease.key);

        await s.pool.disableKey(s.keyHashes[1]!, "revoked", "upstream answered 401");
        await view.until(() => view.keys.get(s.keyHashes[1]!)?.state === KeyState.REVOKED);
        expect(view.keys.get(s.keyHashes[1]!)!.stateReason).toBe("upstream answered 401");

        await s.pool.removeKey(s.keyHashes[2]!);
        await view.until(() => !view.keys.has(s.keyHashes[2]!));

        const listed = await client.listKeys({});
        expect(view.keys.size).toBe(listed.keys.length);
        for (const key of listed.keys) expect(equals(KeyStatusSchema, view.keys.get(key.keyHash)!, key)).toBe(true);
        expect(view.sequences).toEqual(view.sequences.map((_, i) => BigInt(i + 1)));

        controller.abort();
        await done;
        await eventually(() => s.hub.subscriberCount === 0, 5000, "the hub to drop the watch");
      });

      test("heartbeats keep an idle stream alive", async () => {
        const view = new StreamView();
        const controller = new AbortController();
        const done = view.consume(poolClient(urlOf(s.server, port)).watchKeys({}, { signal: controller.signal }));
        await view.until(() => view.kinds.filter((k) => k === "heartbeat").length >= 2, 5000);
        expect(view.kinds[0]).toBe("snapshot");
        controller.abort();
        await done;
      });

      test("filters: provider and families; a key leaving the filter is removed", async () => {
        await s.pool.addKeys([{ provider: "anthropic", key: "sk-ant-watch-filter-0000000000", modelFamilies: ["claude"] }]);
        const client = poolClient(urlOf(s.server, port));
        const controller = new AbortController();
        const anthropic = new StreamView();
        const claude = new StreamView();
        const openai = new StreamView();
        const all = Promise.all([
          anthropic.consume(client.watchKeys({ provider: Provider.ANTHROPIC }, { signal: controller.signal })),
          claude.consume(client.watchKeys({ modelFamilies: ["nothing", "claude"] }, { signal: controller.signal })),
          openai.consume(client.watchKeys({ provider: Provider.OPENAI, modelFamilies: ["gpt4o"] }, { signal: controller.signal })),
        ]);
        for (const v of [anthropic, claude, openai]) await v.until(() => v.kinds.length >= 1);
        expect(anthropic.keys.size).toBe(1);
        expect(claude.keys.size).toBe(1);
        expect(openai.keys.size).toBe(3);
        expect([...anthropic.keys.values()][0]!.keyHash).toMatch(/^ant-/);

        await client.lease({ model: "gpt-4o" });
        await openai.until(() => [...openai.keys.values()].some((k) => k.leaseCount === 1n));
        await s.pool.removeKey(s.keyHashes[0]!);
        await openai.until(() => openai.keys.size === 2);
        // The anthropic-only watches never heard of the OpenAI keys.
        expect(anthropic.kinds.filter((k) => k !== "heartbeat")).toEqual(["snapshot"]);
        expect(claude.kinds.every((k) => k === "snapshot" || k === "heartbeat")).toBe(true);
        controller.abort();
        await all;
      });

      test("bad filters are INVALID_ARGUMENT", async () => {
        const client = poolClient(urlOf(s.server, port));
        const view = new StreamView();
        await view.consume(client.watchKeys({ modelFamilies: ["x".repeat(300)] }));
        expect(ConnectError.from(view.error).code).toBe(Code.InvalidArgument);
        const unknownProvider = new StreamView();
        await unknownProvider.consume(client.watchKeys({ provider: 99 as Provider }));
        expect(ConnectError.from(unknownProvider.error).code).toBe(Code.InvalidArgument);
      });

      test("1,000 subscribe-and-abort cycles leave zero subscriptions and zero listeners", async () => {
        const listenersBefore = s.pool.changes.size;
        const clients = PROTOCOLS_OF[port].filter((p) => p === "grpc" || p === "connect-http1").map((p) => poolClient(urlOf(s.server, port), p));
        const cycle = async (i: number) => {
          const controller = new AbortController();
          const view = new StreamView();
          const done = view.consume(clients[i % clients.length]!.watchKeys({}, { signal: controller.signal }));
          await view.until(() => view.kinds.length >= 1);
          controller.abort();
          await done;
        };
        for (let i = 0; i < 1000; i += 20) await Promise.all(Array.from({ length: 20 }, (_, j) => cycle(i + j)));
        await eventually(() => s.hub.subscriberCount === 0, 10_000, "every watch to be dropped");
        expect(s.hub.signalListenerCount).toBe(0);
        expect(s.hub.indexedCount).toBe(0);
        expect(s.hub.timerCount).toBe(0);
        expect(s.hub.pendingCount).toBe(0);
        expect(s.pool.changes.size).toBe(listenersBefore);
      });
    });

    describe("WatchKeys at shutdown", () => {
      test("every open stream ends with UNAVAILABLE, on every protocol and for grpc-js clients", async () => {
        const s = await startWatchDeployment(deployment, { keys: 2, hub: { coalesceMs: 20 } });
        const views = PROTOCOLS_OF[port].map((protocol) => {
          const view = new StreamView();
          return { view, done: view.consume(poolClient(urlOf(s.server, port), protocol).watchKeys({})) };
        });
        for (const { view } of views) await view.until(() => view.kinds.length >= 1);

        // An independent client: grpc-js with the .proto loaded at run time.
        const definition = protoLoader.loadSync(path.join(__dirname, "../../proto/keypool/v1/keypool.proto"), {
          includeDirs: [path.join(__dirname, "../../proto")],
        });
        const loaded = grpc.loadPackageDefinition(definition) as unknown as {
          keypool: { v1: { KeyPoolService: new (address: string, creds: grpc.ChannelCredentials) => grpc.Client & { WatchKeys(req: object): grpc.ClientReadableStream<unknown> } } };
        };
        const grpcClient = new loaded.keypool.v1.KeyPoolService(`127.0.0.1:${portOf(s.server, port)}`, grpc.credentials.createInsecure());
        const grpcStream = grpcClient.WatchKeys({});
        const grpcMessages: unknown[] = [];
        const grpcStatus = new Promise<grpc.StatusObject>((resolve) => {
          grpcStream.on("data", (m) => grpcMessages.push(m));
          grpcStream.on("error", () => undefined);
          grpcStream.on("status", resolve);
        });
        await eventually(() => grpcMessages.length >= 1, 5000, "the grpc-js snapshot");

        await s.close();
        for (const { view, done } of views) {
          await done;
          expect(ConnectError.from(view.error).code).toBe(Code.Unavailable);
        }
        expect((await grpcStatus).code).toBe(grpc.status.UNAVAILABLE);
        grpcClient.close();
        expect(s.hub.subscriberCount).toBe(0);
      });

      // A slow machine: the process stops running just after the streams were told to end, for
      // longer than the grace the connections get (500 ms to 1 s here). The answers were on
      // their way; a grace counted on the wall clock ended before they were sent (CANCELED).
      test("a stall of the whole process at shutdown, longer than the grace, still ends every stream with UNAVAILABLE", async () => {
        const s = await startWatchDeployment(deployment, { keys: 2, hub: { coalesceMs: 20 } });
        const views = PROTOCOLS_OF[port].map((protocol) => {
          const view = new StreamView();
          return { protocol, view, done: view.consume(poolClient(urlOf(s.server, port), protocol).watchKeys({})) };
        });
        for (const { view } of views) await view.until(() => view.kinds.length >= 1);
        // The stall begins right after the server told the streams to end: its timer comes due
        // with close()'s own 50 ms notice (start-server.ts), set just before it.
        const closed = s.close();
        setTimeout(() => {
          const until = Date.now() + 1500;
          while (Date.now() < until);
        }, 50);
        await closed;
        const codes = await Promise.all(views.map(async ({ protocol, view, done }) => (await done, `${protocol}: ${Code[ConnectError.from(view.error).code]}`)));
        expect(codes).toEqual(views.map(({ protocol }) => `${protocol}: Unavailable`));
      });
    });
  });
});
