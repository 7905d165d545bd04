/**
 * The census behind keypool_keys and keypool_keys_ready follows the pool's change feed, and
 * readiness follows the (fake) clock: a key held after a lease counts as ready again once its
 * hold has passed, with no event in between.
 */
import { ManualClock } from "../../../src/domain/clock";
import { KeyPool } from "../../../src/domain/key-pool";
import { KeyCensus } from "../../../src/metrics/key-census";

function setup() {
  const clock = new ManualClock(1_000_000);
  const pool = new KeyPool({ clock, reuseDelayMs: 1000 });
  const census = new KeyCensus(pool);
  return { clock, pool, census };
}

it("counts keys added before and after it started, by provider and state", () => {
  const clock = new ManualClock(1_000_000);
  const pool = new KeyPool({ clock });
  pool.addKeys([{ provider: "openai", key: "sk-census-0001" }]);
  const census = new KeyCensus(pool);
  expect(census.size).toBe(1); // taken at its first use; the feed keeps it from then on
  const [added] = pool.addKeys([{ provider: "anthropic", key: "sk-ant-census-0002" }, { provider: "openai", key: "sk-census-0003" }]).keyHashes;
  pool.disableKey(added, "revoked", "401");
  const { byState } = census.count(clock.now());
  expect(Object.fromEntries(byState.get("openai")!)).toEqual({ active: 2 });
  expect(Object.fromEntries(byState.get("anthropic")!)).toEqual({ revoked: 1 });
  expect(census.providerOf(added)).toBe("anthropic");
  pool.removeKey(added);
  expect(census.count(clock.now()).byState.has("anthropic")).toBe(false);
  expect(census.providerOf(added)).toBeUndefined();
});

it("counts a held key as ready again once the clock passes its hold, without an event", () => {
  const { clock, pool, census } = setup();
  pool.addKeys([{ provider: "openai", key: "sk-census-0001" }, { provider: "openai", key: "sk-census-0002" }]);
  pool.lease({ model: "gpt-4" });
  expect(census.count(clock.now()).readyByFamily.get("openai")!.get("gpt4")).toBe(1);
  pool.lease({ model: "gpt-4" });
  // No key ready: the family is still listed, at 0 (alerts need the series).
  expect(census.count(clock.now()).readyByFamily.get("openai")!.get("gpt4")).toBe(0);
  clock.advance(999);
  expect(census.count(clock.now()).readyByFamily.get("openai")!.get("gpt4")).toBe(0);
  clock.advance(1);
  expect(census.count(clock.now()).readyByFamily.get("openai")!.get("gpt4")).toBe(2);
});

it("keeps one shared family list per distinct set, whatever the number of keys and changes", () => {
  const { clock, pool, census } = setup();
  expect(census.size).toBe(0); // taken now: what follows reaches it through the change feed
  pool.addKeys(Array.from({ length: 50 }, (_, i) => ({ provider: "openai" as const, key: `sk-census-${String(i).padStart(4, "0")}` })));
  for (let i = 0; i < 20; i++) {
    pool.lease({ model: "gpt-4" });
    clock.advance(100);
  }
  const lists = (census as unknown as { familyLists: Map<string, unknown> }).familyLists;
  expect(lists.size).toBe(1);
  census.close();
  pool.addKeys([{ provider: "anthropic", key: "sk-ant-census-late" }]);
  expect(census.size).toBe(50);
});
