import { writeFileSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { FamilyConfigError, loadFamilyConfig, parseInlineRules } from "../../../src/config/model-families-config";
import { readSettings } from "../../../src/config/settings";

describe("KEYPOOL_MODEL_FAMILIES and ALLOWED_MODEL_FAMILIES", () => {
  it("unset: the built-in table, every family allowed", () => {
    const { families, allowedFamilies } = loadFamilyConfig(readSettings({}).families);
    expect(families.resolve("gpt-4o")).toEqual({ provider: "openai", family: "gpt4o" });
    expect(allowedFamilies).toBeNull();
  });

  it("inline rows are tried first: they extend and override the built-in table", () => {
    const { families } = loadFamilyConfig(readSettings({
      KEYPOOL_MODEL_FAMILIES: "openai:^ft:gpt-4o-mini=turbo; openai:^gpt-4o$=gpt4\nanthropic:^claude-next=claude-opus",
    }).families);
    expect(families.resolve("ft:gpt-4o-mini:acme")).toEqual({ provider: "openai", family: "turbo" });
    expect(families.resolve("gpt-4o")).toEqual({ provider: "openai", family: "gpt4" });
    expect(families.resolve("gpt-4o-2024-08-06")).toEqual({ provider: "openai", family: "gpt4o" });
    expect(families.resolve("claude-next")).toEqual({ provider: "anthropic", family: "claude-opus" });
  });

  it("a row may add a new family, which keys may then serve and operators allow", () => {
    const { families, allowedFamilies } = loadFamilyConfig(readSettings({
      KEYPOOL_MODEL_FAMILIES: "openai:^my-model=mine",
      ALLOWED_MODEL_FAMILIES: "mine, gpt4",
    }).families);
    expect(families.familiesOf("openai").has("mine")).toBe(true);
    expect([...allowedFamilies!]).toEqual(["mine", "gpt4"]);
  });

  it("reads a JSON or YAML file of {provider, pattern, family}", () => {
    const dir = mkdtempSync(join(tmpdir(), "keypool-families-"));
    try {
      const file = join(dir, "families.yaml");
      writeFileSync(file, "- provider: openai\n  pattern: '^gpt-6'\n  family: gpt6\n");
      expect(loadFamilyConfig(readSettings({ KEYPOOL_MODEL_FAMILIES: file }).families).families.resolve("gpt-6-mini")).toEqual({ provider: "openai", family: "gpt6" });
      writeFileSync(join(dir, "f.json"), JSON.stringify([{ provider: "anthropic", pattern: "^claude-x", family: "claude" }]));
      expect(loadFamilyConfig(readSettings({ KEYPOOL_MODEL_FAMILIES: join(dir, "f.json") }).families).families.resolve("claude-x1").family).toBe("claude");
      expect(() => loadFamilyConfig(readSettings({ KEYPOOL_MODEL_FAMILIES: join(dir, "missing.yaml") }).families)).toThrow(/missing\.yaml: cannot read/);
      writeFileSync(file, "- provider: openai\n  pattern: '(unclosed'\n  family: gpt6\n");
      expect(() => loadFamilyConfig(readSettings({ KEYPOOL_MODEL_FAMILIES: file }).families)).toThrow(/entry 1: pattern/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it.each([
    ["gpt-4o=gpt4", /row 1.*provider:regex=family/],
    ["cohere:^x=gpt4", /row 1: provider/],
    ["openai:(=gpt4", /row 1: pattern/],
    ["openai:^x=", /row 1: family/],
    ["openai:^x=gpt4;openai:^y=bad family", /row 2: family/],
  ])("rejects %j clearly", (value, message) => {
    expect(() => parseInlineRules(value)).toThrow(FamilyConfigError);
    expect(() => parseInlineRules(value)).toThrow(message);
  });

  it("an unknown family in ALLOWED_MODEL_FAMILIES stops the start, naming it", () => {
    expect(() => loadFamilyConfig(readSettings({ ALLOWED_MODEL_FAMILIES: "gpt4,gtp4o" }).families)).toThrow(/ALLOWED_MODEL_FAMILIES: unknown family gtp4o/);
  });
});
