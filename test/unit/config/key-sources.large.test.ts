/** The keys-file path a large pool takes: plain entries, repeats dropped in order, keys trimmed. */
import { loadKeySpecs, parseKeysFile } from "../../../src/config/key-sources";
import { readSettings } from "../../../src/config/settings";

describe("a large keys file", () => {
  it("keeps the first of each repeated key, in order, across the environment and the file", () => {
    const file = JSON.stringify([
      { provider: "openai", key: "sk-a" },
      { provider: "openai", key: " sk-y " },
      { provider: "openai", key: "sk-y" },
      { provider: "openai", key: "sk-a", organizationId: "org-1" },
      { provider: "anthropic", key: "sk-a" },
    ]);
    expect(loadKeySpecs(readSettings({ OPENAI_KEY: "sk-a,sk-x", KEYPOOL_KEYS_FILE: "keys.json" }).keys, () => file)).toEqual([
      { provider: "openai", key: "sk-a" },
      { provider: "openai", key: "sk-x" },
      { provider: "openai", key: "sk-y" },
      { provider: "openai", key: "sk-a", organizationId: "org-1" },
      { provider: "anthropic", key: "sk-a" },
    ]);
  });

  it("100,000 plain entries come back as 100,000 specs, nothing more", () => {
    const entries = Array.from({ length: 100_000 }, (_, i) => ({ provider: "openai", key: `sk-${i}` }));
    const specs = loadKeySpecs(readSettings({ KEYPOOL_KEYS_FILE: "keys.json" }).keys, () => JSON.stringify(entries));
    expect(specs).toHaveLength(100_000);
    expect(specs[99_999]).toEqual({ provider: "openai", key: "sk-99999" });
  });

  it("an entry with a null organization is not passed through as it is", () => {
    expect(parseKeysFile("- {provider: OpenAI, key: sk-c, organizationId: null}", "keys.yaml")).toEqual([
      { provider: "openai", key: "sk-c" },
    ]);
    expect(Object.keys(parseKeysFile("- {provider: openai, key: sk-c, organizationId: null}", "keys.yaml")[0])).toEqual([
      "provider",
      "key",
    ]);
  });
});
