/**
 * WatchKeys snapshot slices and batched changes over real sockets, with connect-node (every
 * protocol family, binary and JSON) and grpc-js clients: a pool too big for one slice arrives as
 * several, the last one marked; with `batch`, the changes of one window arrive in one `changes`
 * message; the client's view converges with ListKeys read page by page.
 */
import type * as grpc from "@grpc/grpc-js";
import type { KeyStatus } from "../../gen/ts/keypool/v1/keypool_pb";
import { grpcJsClient, loadGrpcJsPackage } from "../support/clients";
import { eventually, poolClient, startWatchServer, StreamView, type Protocol, type WatchServer } from "./watch-harness";

jest.setTimeout(60_000);

const KEYS = 2000;
const SLICE_BYTES = 16 * 1024;

async function listAllPages(client: ReturnType<typeof poolClient>): Promise<{ keys: KeyStatus[]; pages: number }> {
  const keys: KeyStatus[] = [];
  let pageToken = "";
  for (let pages = 1; ; pages++) {
    const page = await client.listKeys({ pageSize: 300, pageToken });
    keys.push(...page.keys);
    if (!page.nextPageToken) return { keys, pages };
    pageToken = page.nextPageToken;
  }
}

describe("WatchKeys slices and batches end to end", () => {
  let s: WatchServer;
  beforeEach(async () => {
    s = await startWatchServer({ keys: KEYS, hub: { coalesceMs: 200, messageBytes: SLICE_BYTES } });
  });
  afterEach(async () => {
    await s.close();
  });

  const cases: [Protocol, boolean][] = [
    ["grpc", true],
    ["connect-json", true],
    ["grpc-web-http1", true],
    ["connect", false],
    ["grpc-json", false],
  ];
  test.each(cases)("over %s (batch %s): a sliced snapshot, then changes that converge with ListKeys pages", async (protocol, batch) => {
    const client = poolClient(s.server.url, protocol);
    const controller = new AbortController();
    const view = new StreamView();
    const done = view.consume(client.watchKeys({ batch }, { signal: controller.signal }));
    await view.until(() => view.synced);
    expect(view.sliceSizes.length).toBeGreaterThan(5);
    expect(view.keys.size).toBe(KEYS);
    const hashes = [...view.keys.keys()];
    expect(hashes).toEqual([...hashes].sort());

    const leases = await Promise.all(Array.from({ length: 20 }, () => client.lease({ model: "gpt-4o" })));
    s.pool.removeKey(s.keyHashes[0]!);
    await view.until(() => leases.every((l) => view.keys.get(l.keyHash)?.inFlight === 1) && !view.keys.has(s.keyHashes[0]!));
    const kinds = view.kinds.filter((k) => k !== "snapshot" && k !== "heartbeat");
    if (batch) {
      expect(kinds.every((k) => k === "changes")).toBe(true);
      // 21 changes in a few windows: several per message.
      expect(kinds.length).toBeLessThanOrEqual(6);
    } else {
      expect(kinds.filter((k) => k === "updated").length).toBeGreaterThanOrEqual(20);
      expect(kinds).toContain("removedKeyHash");
    }

    const { keys, pages } = await listAllPages(client);
    expect(pages).toBe(Math.ceil((KEYS - 1) / 300));
    expect(view.keys.size).toBe(keys.length);
    for (const key of keys) expect(view.keys.get(key.keyHash)?.leaseCount).toBe(key.leaseCount);
    expect(view.violations).toEqual([]);
    expect(view.sequences).toEqual(view.sequences.map((_, i) => BigInt(i + 1)));
    controller.abort();
    await done;
    await eventually(() => s.hub.subscriberCount === 0, 5000, "the hub to drop the watch");
  });

  test("a grpc-js client reads the slices and the batched changes", async () => {
    const pkg = loadGrpcJsPackage();
    const grpcClient = grpcJsClient(pkg.KeyPoolService, s.server.port);
    type Message = {
      sequence: string;
      event: string;
      snapshot?: { keys: { keyHash: string; leaseCount: string }[]; more: boolean };
      changes?: { updated: { keyHash: string; leaseCount: string }[]; removedKeyHashes: string[] };
    };
    const messages: Message[] = [];
    const stream = (grpcClient as unknown as { WatchKeys(req: object): grpc.ClientReadableStream<Message> }).WatchKeys({ batch: true });
    stream.on("data", (m: Message) => messages.push(m));
    stream.on("error", () => undefined);
    await eventually(() => messages.some((m) => m.event === "snapshot" && m.snapshot?.more === false), 20_000, "the last slice");
    const slices = messages.filter((m) => m.event === "snapshot");
    expect(slices.length).toBeGreaterThan(5);
    expect(slices.slice(0, -1).every((m) => m.snapshot!.more)).toBe(true);
    expect(slices.reduce((n, m) => n + m.snapshot!.keys.length, 0)).toBe(KEYS);

    const client = poolClient(s.server.url);
    const leases = await Promise.all(Array.from({ length: 10 }, () => client.lease({ model: "gpt-4o" })));
    const leased = new Set(leases.map((l) => l.keyHash));
    const seen = () => new Set(messages.filter((m) => m.event === "changes").flatMap((m) => m.changes!.updated.map((k) => k.keyHash)));
    await eventually(() => [...leased].every((h) => seen().has(h)), 10_000, "the leases as changes");
    expect(messages.filter((m) => m.event === "updated")).toEqual([]);
    expect(messages.map((m) => Number(m.sequence))).toEqual(messages.map((_, i) => i + 1));
    stream.cancel();
    grpcClient.close();
  });
});
