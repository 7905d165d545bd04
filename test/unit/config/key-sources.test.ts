import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { FamilyTable } from "../../../src/domain/model-families";
import { KeySourceError, loadKeySpecs, parseKeyList, parseKeysFile } from "../../../src/config/key-sources";
import { readSettings } from "../../../src/config/settings";

describe("keys from the environment", () => {
  it("splits on commas, trims, drops empties and duplicates", () => {
    expect(parseKeyList(" sk-a, sk-b ,,sk-a , ,sk-c")).toEqual(["sk-a", "sk-b", "sk-c"]);
    expect(parseKeyList("")).toEqual([]);
    expect(parseKeyList(undefined)).toEqual([]);
  });

  it("reads OPENAI_KEY and ANTHROPIC_KEY", () => {
    expect(loadKeySpecs(readSettings({ OPENAI_KEY: "sk-1,sk-2", ANTHROPIC_KEY: " sk-ant-1 " }).keys, () => "")).toEqual([
      { provider: "openai", key: "sk-1" },
      { provider: "openai", key: "sk-2" },
      { provider: "anthropic", key: "sk-ant-1" },
    ]);
    expect(loadKeySpecs(readSettings({}).keys, () => "")).toEqual([]);
  });
});

describe("the keys file (KEYPOOL_KEYS_FILE)", () => {
  let dir: string;
  beforeAll(() => (dir = mkdtempSync(join(tmpdir(), "keypool-keys-"))));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it("reads YAML with camelCase or snake_case fields", () => {
    const file = join(dir, "keys.yaml");
    writeFileSync(
      file,
      [
        "- provider: openai",
        "  key: sk-1",
        "  model_families: [gpt4o, turbo]",
        "  trial: true",
        "  organization_id: org-9",
        "- provider: Anthropic",
        "  key: sk-ant-1",
        "  modelFamilies: [claude-opus]",
      ].join("\n"),
    );
    expect(loadKeySpecs(readSettings({ KEYPOOL_KEYS_FILE: file }).keys)).toEqual([
      { provider: "openai", key: "sk-1", modelFamilies: ["gpt4o", "turbo"], trial: true, organizationId: "org-9" },
      { provider: "anthropic", key: "sk-ant-1", modelFamilies: ["claude-opus"] },
    ]);
  });

  it("reads JSON, as a list or as {keys: [...]}, after the environment's keys, without duplicates", () => {
    const file = join(dir, "keys.json");
    writeFileSync(file, JSON.stringify({ keys: [{ provider: "openai", key: "sk-2" }, { provider: "openai", key: "sk-1" }] }));
    expect(loadKeySpecs(readSettings({ OPENAI_KEY: "sk-1", KEYPOOL_KEYS_FILE: file }).keys)).toEqual([
      { provider: "openai", key: "sk-1" },
      { provider: "openai", key: "sk-2" },
    ]);
  });

  it("an empty file is no keys", () => {
    expect(parseKeysFile("", "keys.yaml")).toEqual([]);
  });

  it.each([
    ["not a list", "provider: openai\nkey: sk-1\n", "list"],
    ["missing provider", "- key: sk-secret-1\n", "entry 1: provider"],
    ["unknown provider", "- provider: cohere\n  key: sk-secret-1\n", "entry 1: provider"],
    ["empty key", "- provider: openai\n  key: ''\n", "entry 1 (openai): key"],
    ["bad families", "- provider: openai\n  key: sk-secret-1\n  modelFamilies: gpt4\n", "modelFamilies"],
    ["bad trial", "- provider: openai\n  key: sk-secret-1\n  trial: yes please\n", "trial"],
    ["unknown field (a typo)", "- provider: openai\n  key: sk-secret-1\n  modelfamilies: [gpt4]\n", "unknown field \"modelfamilies\""],
    ["second entry bad", "- provider: openai\n  key: sk-ok\n- provider: openai\n", "entry 2"],
  ])("names the file and entry on %s, never the key", (_name, text, expected) => {
    let error: unknown;
    try {
      parseKeysFile(text, "/etc/keypool/keys.yaml");
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(KeySourceError);
    const message = (error as Error).message;
    expect(message).toContain("/etc/keypool/keys.yaml");
    expect(message).toContain(expected);
    expect(message).not.toContain("sk-secret-1");
  });

  it("a syntax error says where, without quoting the file's text (it holds keys)", () => {
    const yaml = () => parseKeysFile("- provider: openai\n  key: sk-secret-1\n  trial: [unclosed\n", "k.yaml");
    expect(yaml).toThrow(KeySourceError);
    expect(yaml).toThrow(/k\.yaml: is not valid YAML/);
    try {
      yaml();
    } catch (e) {
      expect((e as Error).message).not.toContain("sk-secret-1");
    }
    try {
      parseKeysFile('[{"provider": "openai", "key": "sk-secret-1"', "k.json");
      throw new Error("no error");
    } catch (e) {
      expect((e as Error).message).toContain("k.json: is not valid JSON");
      expect((e as Error).message).not.toContain("sk-secret-1");
    }
  });

  it("checks families against the family table, naming the file, the entry and its provider, never the key", () => {
    const text = "- provider: openai\n  key: sk-secret-1\n- provider: openai\n  key: sk-secret-2\n  modelFamilies: [turbo, gpt99]\n";
    let error: unknown;
    try {
      parseKeysFile(text, "/etc/keypool/keys.yaml", FamilyTable.builtIn());
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(KeySourceError);
    expect((error as Error).message).toMatch(
      /^\/etc\/keypool\/keys\.yaml: entry 2 \(openai\): "gpt99" is not one of the openai model families \(known: turbo, /,
    );
    expect((error as Error).message).not.toContain("sk-secret");
    // A family the operator's table adds is known.
    const table = FamilyTable.builtIn().withOperatorRules([{ provider: "openai", pattern: /^gpt-99/, family: "gpt99" }]);
    expect(parseKeysFile(text, "keys.yaml", table)[1]?.modelFamilies).toEqual(["turbo", "gpt99"]);
  });

  it("a key over the contract's size limit names the entry (or variable) and its size, not the key", () => {
    const long = `sk-${"x".repeat(1100)}`;
    expect(() => parseKeysFile(`- {provider: anthropic, key: ${long}}`, "k.yaml")).toThrow(
      "k.yaml: entry 1 (anthropic): the key is 1103 bytes long; the limit is 1024 bytes",
    );
    expect(() => loadKeySpecs(readSettings({ OPENAI_KEY: `sk-ok,${long}` }).keys, () => "")).toThrow(
      "OPENAI_KEY entry 2: the key is 1103 bytes long; the limit is 1024 bytes",
    );
  });

  it("a plain {provider, key} entry is checked like any other: trimmed, size-limited, non-empty, provider as written or not", () => {
    const long = `sk-${"x".repeat(1100)}`;
    const json = (entries: unknown[]) => JSON.stringify(entries);
    expect(parseKeysFile(json([{ provider: "openai", key: "  sk-a \t" }, { provider: " OpenAI ", key: "sk-b" }]), "k.json")).toEqual([
      { provider: "openai", key: "sk-a" },
      { provider: "openai", key: "sk-b" },
    ]);
    expect(() => parseKeysFile(json([{ provider: "openai", key: "sk-ok" }, { provider: "anthropic", key: long }]), "k.json")).toThrow(
      "k.json: entry 2 (anthropic): the key is 1103 bytes long; the limit is 1024 bytes",
    );
    expect(() => parseKeysFile(json([{ provider: "openai", key: "   " }]), "k.json")).toThrow("k.json: entry 1 (openai): key must be a non-empty string");
    expect(() => parseKeysFile(json([{ provider: "opnai", key: "sk-a" }]), "k.json")).toThrow(/^k\.json: entry 1: provider must be one of/);
    // Multi-byte characters count by their UTF-8 bytes, not their UTF-16 length.
    const wide = `sk-${"é".repeat(511)}`; // 3 + 1,022 bytes
    expect(() => parseKeysFile(json([{ provider: "anthropic", key: wide }]), "k.json")).toThrow("the key is 1025 bytes long; the limit is 1024 bytes");
  });

  it("the same key of one provider under two organizations is two keys; the same key twice is one", () => {
    const file = join(dir, "orgs.json");
    writeFileSync(
      file,
      JSON.stringify([
        { provider: "openai", key: "sk-a" },
        { provider: "openai", key: "sk-a", organizationId: "org-1" },
        { provider: "openai", key: "sk-a" },
        { provider: "anthropic", key: "sk-a" },
        { provider: "openai", key: "sk-a", organizationId: "org-1" },
      ]),
    );
    expect(loadKeySpecs(readSettings({ KEYPOOL_KEYS_FILE: file }).keys)).toEqual([
      { provider: "openai", key: "sk-a" },
      { provider: "openai", key: "sk-a", organizationId: "org-1" },
      { provider: "anthropic", key: "sk-a" },
    ]);
  });

  it("a missing file is an error naming it", () => {
    expect(() => loadKeySpecs(readSettings({ KEYPOOL_KEYS_FILE: join(dir, "nope.yaml") }).keys)).toThrow(/nope\.yaml: cannot read.*ENOENT/);
  });
});
