import { create } from "@bufbuild/protobuf";
import { Code, ConnectError, createClient, createRouterTransport } from "@connectrpc/connect";
import { createWatcherLimit } from "../../../src/auth/watcher-limit";
import { KeyPoolService, WatchKeysResponseSchema } from "../../../gen/ts/keypool/v1/keypool_pb";

/** A WatchKeys that sends one message and then stays open until the client leaves. */
function setup(max: number) {
  const limit = createWatcherLimit(max);
  const transport = createRouterTransport(
    (router) =>
      router.service(KeyPoolService, {
        async *watchKeys(_req, ctx) {
          yield create(WatchKeysResponseSchema, { sequence: 1n });
          await new Promise<void>((resolve) => ctx.signal.addEventListener("abort", () => resolve()));
        },
        listKeys: () => ({}),
      }),
    { router: { interceptors: [limit.interceptor] } },
  );
  return { limit, client: createClient(KeyPoolService, transport) };
}

async function openStream(client: ReturnType<typeof setup>["client"]) {
  const abort = new AbortController();
  const it = client.watchKeys({}, { signal: abort.signal })[Symbol.asyncIterator]();
  const first = await it.next();
  return { first, close: () => abort.abort() };
}

describe("WatchKeys stream cap", () => {
  it("refuses the stream past the cap with RESOURCE_EXHAUSTED and frees slots when clients leave", async () => {
    const { limit, client } = setup(2);
    const a = await openStream(client);
    const b = await openStream(client);
    expect(a.first.done).toBe(false);
    expect(limit.open).toBe(2);

    const err = await openStream(client).then(
      () => undefined,
      (e) => ConnectError.from(e),
    );
    expect(err?.code).toBe(Code.ResourceExhausted);
    expect(err?.rawMessage).toMatch(/limit is 2.*KEYPOOL_MAX_WATCHERS/);
    expect(limit.open).toBe(2);

    a.close();
    await waitFor(() => limit.open === 1);
    const c = await openStream(client);
    expect(c.first.done).toBe(false);
    b.close();
    c.close();
    await waitFor(() => limit.open === 0);
  });

  it("does not count unary calls", async () => {
    const { limit, client } = setup(1);
    const a = await openStream(client);
    await expect(client.listKeys({})).resolves.toBeDefined();
    a.close();
    await waitFor(() => limit.open === 0);
  });
});

async function waitFor(condition: () => boolean): Promise<void> {
  for (let i = 0; i < 200 && !condition(); i++) await new Promise((r) => setTimeout(r, 5));
  expect(condition()).toBe(true);
}
