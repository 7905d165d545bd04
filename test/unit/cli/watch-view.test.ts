import { create } from "@bufbuild/protobuf";
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import type { MessageInitShape } from "@bufbuild/protobuf";
import {
  KeyState,
  KeyStatusSchema,
  Provider,
  TokenUsageSchema,
  WatchKeysResponseSchema,
  type KeyStatus,
} from "../../../gen/ts/keypool/v1/keypool_pb";
import { describeFilter, parseWatchArgs, UsageError } from "../../../src/cli/watch-args";
import { formatCount, formatWait, renderScreen, WatchView, type RenderOptions } from "../../../src/cli/watch-view";

const NOW = Date.UTC(2026, 0, 1, 12);

function key(keyHash: string, patch: MessageInitShape<typeof KeyStatusSchema> = {}): KeyStatus {
  return create(KeyStatusSchema, {
    keyHash,
    provider: Provider.OPENAI,
    modelFamilies: ["gpt4o"],
    state: KeyState.ACTIVE,
    ...patch,
  });
}

const snapshot = (...keys: KeyStatus[]) =>
  create(WatchKeysResponseSchema, { sequence: 1n, event: { case: "snapshot", value: { keys } } });
const updated = (k: KeyStatus) => create(WatchKeysResponseSchema, { sequence: 2n, event: { case: "updated", value: k } });
const removed = (h: string) => create(WatchKeysResponseSchema, { sequence: 3n, event: { case: "removedKeyHash", value: h } });

const options = (patch: Partial<RenderOptions> = {}): RenderOptions => ({
  url: "http://127.0.0.1:50051",
  filter: "",
  connection: { kind: "connected" },
  now: NOW,
  width: 120,
  height: 40,
  color: false,
  ...patch,
});

describe("keypool-watch view", () => {
  test("renders a row per key with state, ready in, in flight, leases, tokens by family and reason", () => {
    const view = new WatchView();
    view.apply(
      snapshot(
        key("oai-aaaa", {
          modelFamilies: ["gpt4o", "turbo"],
          lastChecked: timestampFromMs(NOW - 12_000),
          inFlight: 2,
          leaseCount: 1234n,
          usage: {
            gpt4o: create(TokenUsageSchema, { inputTokens: 12_345n, outputTokens: 678n, prompts: 3n }),
            turbo: create(TokenUsageSchema, { inputTokens: 5n, outputTokens: 1n, prompts: 1n }),
          },
        }),
        key("oai-bbbb", { readyAt: timestampFromMs(NOW + 4200), cooldownUntil: timestampFromMs(NOW + 4200) }),
        key("oai-cccc", { state: KeyState.REVOKED, stateReason: "upstream answered 401" }),
      ),
      NOW,
    );
    const lines = renderScreen(view, options());
    const text = lines.join("\n");
    expect(lines[0]).toContain("live");
    expect(lines[1]).toBe("3 keys: 1 active, 1 cooling down, 1 not active; 2 in flight");
    expect(lines[3]).toMatch(/^KEY\s+STATE\s+READY IN\s+IN FLIGHT\s+LEASES\s+CHECKED\s+FAMILIES\s+TOKENS/);
    expect(lines[4]).toMatch(/^oai-aaaa\s+active\s+now\s+2\s+1\.2k\s+12\.0s ago\s+gpt4o,turbo\s+gpt4o 12\.3k\/678  turbo 5\/1$/);
    expect(lines[5]).toMatch(/^oai-bbbb\s+cooling\s+4\.2s\s+0\s+0\s+never\s+gpt4o$/);
    expect(lines[6]).toMatch(/^oai-cccc\s+revoked\s+-\s+0\s+0\s+never\s+gpt4o\s+upstream answered 401$/);
    expect(text).not.toContain("\x1b[");
  });

  test("updates and removals change the table; a new snapshot replaces it", () => {
    const view = new WatchView();
    view.apply(snapshot(key("oai-a"), key("oai-b")), NOW);
    view.apply(updated(key("oai-a", { state: KeyState.DISABLED, stateReason: "maintenance" })), NOW);
    view.apply(removed("oai-b"), NOW);
    let rows = renderScreen(view, options()).slice(4);
    expect(rows).toHaveLength(1);
    expect(rows[0]).toMatch(/^oai-a\s+disabled\s+-.*maintenance$/);
    view.apply(snapshot(key("oai-z")), NOW);
    rows = renderScreen(view, options()).slice(4);
    expect(rows).toEqual([expect.stringMatching(/^oai-z\s+active/)]);
  });

  test("a sliced snapshot replaces the table only once its last slice is in; batched changes apply in place", () => {
    const view = new WatchView();
    view.apply(snapshot(key("oai-old")), NOW);
    const slice = (more: boolean, ...keys: KeyStatus[]) =>
      create(WatchKeysResponseSchema, { sequence: 1n, event: { case: "snapshot", value: { keys, more } } });
    view.disconnected();
    view.apply(slice(true, key("oai-a"), key("oai-b")), NOW);
    // Until the last slice: the last known table, marked stale.
    expect([...view.keys.keys()]).toEqual(["oai-old"]);
    expect(view.synced).toBe(false);
    view.apply(slice(false, key("oai-c")), NOW);
    expect([...view.keys.keys()]).toEqual(["oai-a", "oai-b", "oai-c"]);
    expect(view.synced).toBe(true);
    view.apply(
      create(WatchKeysResponseSchema, {
        sequence: 2n,
        event: { case: "changes", value: { updated: [key("oai-a", { state: KeyState.REVOKED }), key("oai-d")], removedKeyHashes: ["oai-b"] } },
      }),
      NOW,
    );
    expect(view.sorted().map((k) => [k.keyHash, k.state])).toEqual([
      ["oai-a", KeyState.REVOKED],
      ["oai-c", KeyState.ACTIVE],
      ["oai-d", KeyState.ACTIVE],
    ]);
  });

  test("fits the terminal: no line wider than the width, extra keys counted", () => {
    const view = new WatchView();
    view.apply(snapshot(...Array.from({ length: 50 }, (_, i) => key(`oai-${String(i).padStart(4, "0")}`))), NOW);
    const lines = renderScreen(view, options({ width: 30, height: 10 }));
    expect(lines).toHaveLength(10);
    for (const line of lines) expect(line.length).toBeLessThanOrEqual(30);
    expect(lines[9]).toMatch(/^… and 45 more keys/);
  });

  test("shows the connection state, and colours only when asked", () => {
    const view = new WatchView();
    const retrying = renderScreen(view, options({ connection: { kind: "retrying", inMs: 2000, reason: "UNAVAILABLE" } }));
    expect(retrying[0]).toContain("disconnected; retrying in 2.0s");
    expect(retrying[2]).toBe("last error: UNAVAILABLE");
    expect(retrying.join("\n")).toContain("(waiting for the first snapshot)");
    view.apply(snapshot(key("oai-a")), NOW);
    expect(renderScreen(view, options({ color: true })).join("\n")).toContain("\x1b[32m");
  });

  test("formats waits and counts compactly", () => {
    expect(formatWait(0)).toBe("now");
    expect(formatWait(-5)).toBe("now");
    expect(formatWait(850)).toBe("850ms");
    expect(formatWait(4200)).toBe("4.2s");
    expect(formatWait(65_000)).toBe("1m05s");
    expect(formatWait(2 * 3600_000 + 3 * 60_000)).toBe("2h03m");
    expect(formatCount(999n)).toBe("999");
    expect(formatCount(1_234n)).toBe("1.2k");
    expect(formatCount(345_600_000n)).toBe("346M");
  });
});

describe("keypool-watch arguments", () => {
  test("flags, environment and defaults", () => {
    expect(parseWatchArgs([], {})).toMatchObject({ url: "http://127.0.0.1:50051", token: undefined, protocol: "grpc", httpVersion: "2" });
    expect(parseWatchArgs([], { KEYPOOL_URL: "http://h:1", KEYPOOL_TOKEN: "t" })).toMatchObject({ url: "http://h:1", token: "t" });
    const args = parseWatchArgs(
      ["--url=https://x:2", "--token", "u", "--provider", "openai", "--family", "gpt4o", "--family", "turbo,o1", "--protocol", "connect", "--http1", "--no-color"],
      { KEYPOOL_TOKEN: "t" },
    );
    expect(args).toMatchObject({
      url: "https://x:2",
      token: "u",
      provider: Provider.OPENAI,
      families: ["gpt4o", "turbo", "o1"],
      protocol: "connect",
      httpVersion: "1.1",
      color: false,
    });
  });

  test("--provider takes any of the seven providers, and the title names it", () => {
    const names = { openai: Provider.OPENAI, anthropic: Provider.ANTHROPIC, google: Provider.GOOGLE_AI, mistral: Provider.MISTRAL, azure: Provider.AZURE_OPENAI, bedrock: Provider.AWS_BEDROCK, vertex: Provider.GCP_VERTEX };
    for (const [name, provider] of Object.entries(names)) {
      const args = parseWatchArgs(["--provider", name, "--family", "llama"], {});
      expect(args.provider).toBe(provider);
      expect(describeFilter(args)).toBe(`${name}; families: llama`);
    }
  });

  test("bad input is a clear usage error", () => {
    expect(() => parseWatchArgs(["--provider", "azur"], {})).toThrow(new UsageError('unknown provider "azur" (expected one of openai, anthropic, google, mistral, azure, bedrock, vertex)'));
    expect(() => parseWatchArgs(["--url", "ftp://x"], {})).toThrow(UsageError);
    expect(() => parseWatchArgs(["--http1"], {})).toThrow(/gRPC needs HTTP\/2/);
    expect(() => parseWatchArgs(["--bogus"], {})).toThrow(/unknown option "--bogus"/);
    expect(() => parseWatchArgs(["--token"], {})).toThrow(/--token needs a value/);
  });
});
