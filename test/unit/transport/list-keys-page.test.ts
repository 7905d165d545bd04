import { toBinary } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import fc from "fast-check";
import { KeyStatusSchema } from "../../../gen/ts/keypool/v1/keypool_pb";
import { ManualClock } from "../../../src/domain/clock";
import { KeyPool } from "../../../src/domain/key-pool";
import { freshKeyStatus } from "../../../src/domain/key-entry";
import { keyStatusToProto } from "../../../src/transport/convert";
import { DEFAULT_PAGE_SIZE, encodedSizeBound, listKeysPage, MAX_PAGE_SIZE } from "../../../src/transport/list-keys-page";

const FAMILIES = ["turbo", "gpt4", "gpt4o", "gpt41", "o3"];

function poolWith(n: number, start = 0): KeyPool {
  const pool = new KeyPool({ clock: new ManualClock() });
  addKeys(pool, start, n);
  return pool;
}

function addKeys(pool: KeyPool, start: number, n: number): string[] {
  const specs = Array.from({ length: n }, (_, i) => ({
    provider: "openai" as const,
    key: `sk-test-page-${String(start + i).padStart(6, "0")}`,
    modelFamilies: (start + i) % 3 === 0 ? ["gpt4o"] : FAMILIES,
    organizationId: `org-${start + i}`,
  }));
  return pool.addKeys(specs).keyHashes;
}

async function readAll(pool: KeyPool, pageSize: number, filter: { modelFamilies?: string[] } = {}, between?: (page: number) => void) {
  const seen: string[] = [];
  let token = "";
  for (let page = 0; ; page++) {
    const result = await listKeysPage(pool, filter, { pageSize, pageToken: token });
    seen.push(...result.keys.map((k) => k.keyHash));
    if (!result.nextPageToken) return { seen, pages: page + 1 };
    token = result.nextPageToken;
    between?.(page);
  }
}

const invalid = async (fn: () => Promise<unknown>, message: RegExp) => {
  try {
    await fn();
  } catch (error) {
    expect(error).toBeInstanceOf(ConnectError);
    expect((error as ConnectError).code).toBe(Code.InvalidArgument);
    expect((error as ConnectError).rawMessage).toMatch(message);
    expect((error as ConnectError).rawMessage.length).toBeLessThan(300);
    return;
  }
  throw new Error("expected INVALID_ARGUMENT");
};

describe("ListKeys pages", () => {
  test("pages cover every key once, in key_hash order, and only the last page has no token", async () => {
    const pool = poolWith(2_345);
    const { seen, pages } = await readAll(pool, 500);
    expect(pages).toBe(5);
    expect(seen).toEqual(pool.listKeys().map((k) => k.keyHash));
  });

  test("no page_size gives the default page; a larger one is lowered to the maximum", async () => {
    const pool = poolWith(MAX_PAGE_SIZE + 5);
    const first = await listKeysPage(pool, {}, { pageSize: 0, pageToken: "" });
    expect(first.keys).toHaveLength(DEFAULT_PAGE_SIZE);
    expect(first.nextPageToken).not.toBe("");
    const big = await listKeysPage(pool, {}, { pageSize: 1_000_000, pageToken: "" });
    expect(big.keys).toHaveLength(MAX_PAGE_SIZE);
  });

  test("a filter pages over the matching keys only", async () => {
    const pool = poolWith(900);
    const expected = pool.listKeys({ modelFamilies: ["gpt41"] }).map((k) => k.keyHash);
    expect(expected.length).toBe(600);
    expect((await readAll(pool, 250, { modelFamilies: ["gpt41"] })).seen).toEqual(expected);
  });

  test("paging over a changing pool never skips or repeats a key that stays in it throughout", async () => {
    const pool = poolWith(1_000);
    const all = pool.listKeys().map((k) => k.keyHash);
    // Between pages: remove some keys (from pages read and not yet read) and add new ones.
    const removed = new Set(all.filter((_, i) => i % 7 === 0));
    const toRemove = [...removed];
    let added = 0;
    const { seen } = await readAll(pool, 100, {}, (page) => {
      for (const hash of toRemove.splice(0, 20)) pool.removeKey(hash);
      addKeys(pool, 10_000 + added, 30);
      added += 30;
      void page;
    });
    const stayed = all.filter((hash) => !removed.has(hash));
    const counts = new Map<string, number>();
    for (const hash of seen) counts.set(hash, (counts.get(hash) ?? 0) + 1);
    for (const hash of stayed) expect(counts.get(hash)).toBe(1);
    expect([...counts.values()].every((n) => n === 1)).toBe(true);
    expect(seen).toEqual([...seen].sort());
  });

  test("a damaged or foreign token, or a token sent with another filter, is INVALID_ARGUMENT", async () => {
    const pool = poolWith(50);
    const { nextPageToken } = await listKeysPage(pool, {}, { pageSize: 10, pageToken: "" });
    await invalid(() => listKeysPage(pool, {}, { pageSize: 10, pageToken: "not a token" }), /page_token is not a next_page_token/);
    await invalid(() => listKeysPage(pool, {}, { pageSize: 10, pageToken: nextPageToken.slice(0, -3) }), /page_token is not/);
    await invalid(() => listKeysPage(pool, {}, { pageSize: 10, pageToken: "A".repeat(100_000) }), /page_token is not/);
    await invalid(
      () => listKeysPage(pool, { modelFamilies: ["gpt4o"] }, { pageSize: 10, pageToken: nextPageToken }),
      /another provider or model_families/,
    );
    await invalid(() => listKeysPage(pool, {}, { pageSize: -1, pageToken: "" }), /page_size must be 0/);
    // The same token with the same filter still works (tokens do not expire).
    expect((await listKeysPage(pool, {}, { pageSize: 10, pageToken: nextPageToken })).keys).toHaveLength(10);
  });
});

describe("encodedSizeBound", () => {
  test("property: never below the real encoded size, so a page's budget holds", () => {
    const big = fc.nat({ max: Number.MAX_SAFE_INTEGER });
    const time = fc.integer({ min: 0, max: 253402300799000 });
    fc.assert(
      fc.property(
        fc.record({
          hash: fc.string({ unit: "binary" }),
          org: fc.string({ unit: "binary" }),
          reason: fc.string({ unit: "binary" }),
          families: fc.array(fc.string({ unit: "binary" }), { maxLength: 6 }),
          times: fc.array(time, { minLength: 5, maxLength: 5 }),
          counts: fc.array(big, { minLength: 6, maxLength: 6 }),
        }),
        (r) => {
          const status = {
            ...freshKeyStatus(r.hash, "openai", r.families),
            organizationId: r.org,
            stateReason: r.reason,
            trial: true,
            state: "revoked" as const,
            readyAt: r.times[0]!,
            cooldownUntil: r.times[1]!,
            rateLimitedAt: r.times[2]!,
            lastUsed: r.times[3]!,
            lastChecked: r.times[4]!,
            promptCount: r.counts[0]!,
            inFlight: r.counts[1]! % 2 ** 32,
            leaseCount: r.counts[2]!,
            usage: Object.fromEntries(r.families.map((f) => [f, { inputTokens: r.counts[3]!, outputTokens: r.counts[4]!, prompts: r.counts[5]! }])),
          };
          const real = toBinary(KeyStatusSchema, keyStatusToProto(status)).length + 6;
          expect(encodedSizeBound(status)).toBeGreaterThanOrEqual(real);
        },
      ),
      { numRuns: 300 },
    );
  });
});
