/**
 * The per-key savings of a large pool (shared family lists, usage made on first use, nodes at
 * their final length) must not show through: statuses stay detached copies, and usage is counted
 * as before.
 */
import { internFamilies } from "../../../src/domain/key-entry";
import type { KeySpec } from "../../../src/domain/types";
import { makePool } from "./helpers";

const oai = (key: string, extra: Partial<KeySpec> = {}): KeySpec => ({ provider: "openai", key, ...extra });

describe("key footprint", () => {
  it("shares one frozen list per distinct list of families, in order", () => {
    const a = internFamilies(["turbo", "gpt4"]);
    expect(internFamilies(["turbo", "gpt4"])).toBe(a);
    expect(Object.isFrozen(a)).toBe(true);
    expect(internFamilies(["gpt4", "turbo"])).not.toBe(a);
    expect(internFamilies(["gpt4", "turbo"])).toEqual(["gpt4", "turbo"]);
  });

  it("a status's families are its own copy: changing them changes no key", () => {
    const { pool } = makePool();
    const { keyHashes } = pool.addKeys([oai("sk-one"), oai("sk-two")]);
    const status = pool.getKey(keyHashes[0])!;
    status.modelFamilies.push("gpt4o");
    expect(pool.getKey(keyHashes[0])!.modelFamilies).toEqual(["turbo", "gpt4"]);
    expect(pool.getKey(keyHashes[1])!.modelFamilies).toEqual(["turbo", "gpt4"]);
    expect(pool.listKeys().every((k) => k.modelFamilies.length === 2)).toBe(true);
  });

  it("a key without usage has an empty usage record; the first IncrementUsage starts it", () => {
    const { pool } = makePool();
    const [keyHash] = pool.addKeys([oai("sk-one")]).keyHashes;
    expect(pool.getKey(keyHash)!.usage).toEqual({});
    pool.incrementUsage({ keyHash, model: "gpt-4", inputTokens: 3, outputTokens: 4 });
    pool.incrementUsage({ keyHash, model: "gpt-4", inputTokens: 1, outputTokens: 1 });
    expect(pool.getKey(keyHash)!.usage).toEqual({ gpt4: { inputTokens: 4, outputTokens: 5, prompts: 2 } });
  });

  it("a disabled and re-enabled key is leased again (its index nodes come back)", () => {
    const { pool, clock } = makePool();
    const [keyHash] = pool.addKeys([oai("sk-one")]).keyHashes;
    pool.disableKey(keyHash);
    expect(() => pool.lease({ model: "gpt-4" })).toThrow();
    pool.enableKey(keyHash);
    expect(pool.lease({ model: "gpt-4" }).keyHash).toBe(keyHash);
    clock.advance(1000);
    expect(pool.lease({ model: "gpt-3.5-turbo" }).keyHash).toBe(keyHash);
  });

  it("counts keys per provider without listing them", () => {
    const { pool } = makePool();
    expect(pool.countByProvider()).toEqual({});
    pool.addKeys([oai("sk-one"), oai("sk-two"), { provider: "anthropic", key: "sk-ant-one" }]);
    expect(pool.countByProvider()).toEqual({ openai: 2, anthropic: 1 });
  });

  it("a refused spec late in a batch leaves nothing of the batch behind, and no event", () => {
    const { pool, events } = makePool();
    pool.addKeys([oai("sk-old")]);
    events.length = 0;
    expect(() => pool.addKeys([oai("sk-new-1"), oai("sk-new-2"), oai("sk-old"), oai("sk-bad", { modelFamilies: ["nope"] })])).toThrow(/keys\[3\]/);
    expect(pool.size).toBe(1);
    expect(events).toEqual([]);
    expect(pool.addKeys([oai("sk-new-1"), oai("sk-new-1"), oai("sk-old")])).toMatchObject({ added: 1, duplicates: 2 });
    expect(pool.size).toBe(2);
  });

  it("usage by family survives a restore and goes on counting, each family on its own", () => {
    const { pool } = makePool();
    const [keyHash] = pool.addKeys([oai("sk-one")]).keyHashes;
    pool.incrementUsage({ keyHash, model: "gpt-4", inputTokens: 10, outputTokens: 1 });
    pool.incrementUsage({ keyHash, model: "gpt-3.5-turbo", inputTokens: 5, outputTokens: 2 });
    const saved = { ...pool.getKey(keyHash)!, key: "sk-one" };
    const again = makePool().pool;
    again.restore([saved]);
    expect(again.getKey(keyHash)!.usage).toEqual({
      gpt4: { inputTokens: 10, outputTokens: 1, prompts: 1 },
      turbo: { inputTokens: 5, outputTokens: 2, prompts: 1 },
    });
    again.incrementUsage({ keyHash, model: "gpt-3.5-turbo", inputTokens: 1, outputTokens: 1 });
    expect(again.getKey(keyHash)!.usage.turbo).toEqual({ inputTokens: 6, outputTokens: 3, prompts: 2 });
    expect(again.getKey(keyHash)!.usage.gpt4).toEqual({ inputTokens: 10, outputTokens: 1, prompts: 1 });
    // The stored record is not shared with the pool.
    saved.usage.gpt4.prompts = 99;
    expect(again.getKey(keyHash)!.usage.gpt4.prompts).toBe(1);
  });
});
