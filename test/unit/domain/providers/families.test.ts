import { ErrorCode } from "../../../../src/domain/errors";
import { FamilyTable } from "../../../../src/domain/model-families";
import { PROVIDERS } from "../../../../src/domain/providers";
import type { ProviderId } from "../../../../src/domain/types";
import { parseInlineRules } from "../../../../src/config/model-families-config";
import { makePool, poolError } from "../helpers";
import { credential } from "./fixtures";

const table = FamilyTable.builtIn();

describe("each provider's family table", () => {
  it.each([
    ["google", "gemini-2.0-flash", "gemini-flash"],
    ["google", "models/gemini-1.5-flash-002", "gemini-flash"],
    ["google", "gemini-2.0-flash-lite", "gemini-flash-lite"],
    ["google", "gemini-2.5-pro", "gemini-pro"],
    ["google", "gemini-1.0-ultra", "gemini"],
    ["google", "gemini-embedding-001", "gemini-embedding"],
    ["mistral", "mistral-tiny", "mistral-tiny"],
    ["mistral", "open-mistral-7b", "mistral-tiny"],
    ["mistral", "mistral-small-latest", "mistral-small"],
    ["mistral", "ministral-8b-latest", "mistral-small"],
    ["mistral", "mistral-medium-2505", "mistral-medium"],
    ["mistral", "mistral-large-2411", "mistral-large"],
    ["mistral", "open-mixtral-8x22b", "mistral-large"],
    ["mistral", "codestral-latest", "codestral"],
    ["mistral", "mistral-embed", "mistral-tiny"],
    ["azure", "gpt-4o-mini", "turbo"],
    ["azure", "gpt-4o", "gpt4o"],
    ["azure", "gpt-4-0613", "gpt4"],
    ["azure", "o3-mini", "o3-mini"],
    ["azure", "text-embedding-3-large", "turbo"],
    ["bedrock", "anthropic.claude-3-5-sonnet-20240620-v1:0", "claude-sonnet"],
    ["bedrock", "us.anthropic.claude-3-opus-20240229-v1:0", "claude-opus"],
    ["bedrock", "anthropic.claude-3-haiku-20240307-v1:0", "claude-haiku"],
    ["bedrock", "anthropic.claude-v2:1", "claude"],
    ["bedrock", "mistral.mistral-large-2407-v1:0", "mistral-large"],
    ["bedrock", "mistral.mixtral-8x7b-instruct-v0:1", "mistral-small"],
    ["bedrock", "meta.llama3-1-70b-instruct-v1:0", "llama"],
    ["vertex", "claude-3-5-sonnet-v2@20241022", "claude-sonnet"],
    ["vertex", "claude-opus-4@20250514", "claude-opus"],
    ["vertex", "claude-3-haiku@20240307", "claude-haiku"],
    ["vertex", "mistral-large@2407", "mistral-large"],
    ["vertex", "mistral-nemo@2407", "mistral-small"],
    ["vertex", "codestral@2405", "codestral"],
    ["vertex", "meta/llama-3.1-405b-instruct-maas", "llama"],
  ] as [ProviderId, string, string][])("%s: %s → %s", (provider, model, family) => {
    expect(table.resolve(model, provider)).toEqual({ provider, family });
  });

  it("every default family of every provider is one its table can resolve to or names", () => {
    for (const p of PROVIDERS) {
      const fromRows = new Set(p.familyRules.map((r) => r.family));
      for (const f of p.defaultFamilies) expect([p.id, f, fromRows.has(f)]).toEqual([p.id, f, true]);
    }
  });

  it("a model of another provider, asked for under the wrong one, is refused naming both", () => {
    expect(() => table.resolve("gemini-2.0-flash", "mistral")).toThrow(/Google AI model \(provider google\).*provider mistral/);
  });
});

describe("the provider is inferred from the model where only one can mean it", () => {
  it.each([
    ["gpt-4o", "openai", "gpt4o"],
    ["claude-3-5-sonnet-20241022", "anthropic", "claude-sonnet"],
    ["gemini-2.0-flash", "google", "gemini-flash"],
    ["codestral-latest", "mistral", "codestral"],
    // Bedrock's ids name their vendor, so they are Bedrock's alone.
    ["anthropic.claude-3-haiku-20240307-v1:0", "bedrock", "claude-haiku"],
    ["meta.llama3-1-70b-instruct-v1:0", "bedrock", "llama"],
    // Only Vertex names Llama this way.
    ["meta/llama-3.1-405b-instruct-maas", "vertex", "llama"],
    // The vendor comes before the hosts that resell its models.
    ["claude-3-5-sonnet-v2@20241022", "anthropic", "claude-sonnet"],
    ["mistral-large@2407", "mistral", "mistral-large"],
  ])("%s → %s", (model, provider, family) => {
    expect(table.resolve(model)).toEqual({ provider, family });
  });

  it("a model only hosts map, more than one of them, needs the provider named", () => {
    const rows = parseInlineRules("bedrock:^llama-4=llama;vertex:^llama-4=llama");
    const withRows = table.withOperatorRules(rows);
    expect(() => withRows.resolve("llama-4-scout")).toThrow(/several providers \(bedrock, vertex\); name the provider/);
    expect(withRows.resolve("llama-4-scout", "vertex")).toEqual({ provider: "vertex", family: "llama" });
  });

  it("KEYPOOL_MODEL_FAMILIES takes rows for every provider, tried before the built-in ones", () => {
    const rows = parseInlineRules(PROVIDERS.map((p) => `${p.id}:^house-${p.id}=house-${p.id}`).join(";"));
    const withRows = table.withOperatorRules(rows);
    for (const p of PROVIDERS) {
      expect(withRows.resolve(`house-${p.id}-1`, p.id)).toEqual({ provider: p.id, family: `house-${p.id}` });
      expect(withRows.familiesOf(p.id).has(`house-${p.id}`)).toBe(true);
    }
    // An operator row overrides a built-in one.
    expect(table.withOperatorRules(parseInlineRules("bedrock:^meta\\.llama3-1-405b=llama-big")).resolve("meta.llama3-1-405b-instruct-v1:0")).toEqual({
      provider: "bedrock",
      family: "llama-big",
    });
  });
});

describe("leasing by model across providers", () => {
  it("a key serves its provider's default families; a family of another provider is refused", () => {
    const { pool } = makePool();
    pool.addKeys([{ provider: "bedrock", key: credential("bedrock") }]);
    expect(pool.lease({ model: "meta.llama3-70b-instruct-v1:0" }).modelFamily).toBe("llama");
    const message = poolError(() => pool.addKeys([{ provider: "google", key: "g-1", modelFamilies: ["gpt4o"] }]), ErrorCode.InvalidArgument).message;
    expect(message).toContain("gpt4o");
  });

  it("trial keys never serve a provider's embedding models", () => {
    const { pool } = makePool();
    pool.addKeys([{ provider: "mistral", key: "m-trial", trial: true }]);
    poolError(() => pool.lease({ model: "mistral-embed" }), ErrorCode.FailedPrecondition);
    expect(pool.lease({ model: "mistral-tiny" }).provider).toBe("mistral");
  });
});
