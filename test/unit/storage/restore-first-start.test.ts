/** Nothing stored yet: the plan is the general one's, with every configured key new. */
import { hashKey } from "../../../src/domain/key-hash";
import type { KeySpec } from "../../../src/domain/types";
import { planRestore } from "../../../src/storage/restore";
import type { StoredKey } from "../../../src/storage/state-store";
import { keyStatus } from "./fixtures";

const configured: KeySpec[] = [
  { provider: "openai", key: "sk-a" },
  { provider: "openai", key: " sk-a " },
  { provider: "anthropic", key: "sk-ant-b" },
  { provider: "openai", key: "sk-a", organizationId: "org-1" },
  { provider: "openai", key: "sk-c", modelFamilies: ["gpt4o"] },
];

/** The configured keys' hashes in order, the second one a duplicate of the first once trimmed. */
const uniqueHashes = [
  hashKey("openai", "sk-a", ""),
  hashKey("anthropic", "sk-ant-b", ""),
  hashKey("openai", "sk-a", "org-1"),
  hashKey("openai", "sk-c", ""),
];

describe("planRestore on an empty store", () => {
  it("plans exactly what the general case plans for keys it has never stored", () => {
    const first = planRestore([], configured);
    // An unrelated removed row sends the same configuration through the general path.
    const other: StoredKey = { record: { ...keyStatus("oai-00000000000000ff"), key: "sk-other" }, origin: "runtime", removedAt: 1 };
    const general = planRestore([other], configured);
    expect(first.newSpecs).toEqual(general.newSpecs);
    expect(first.configuredDuplicates).toBe(general.configuredDuplicates);
    expect(first.configuredDuplicates).toBe(1);
    expect(first.newSpecs.map((s) => hashKey(s.provider, s.key.trim(), s.organizationId ?? ""))).toEqual(uniqueHashes);
    expect(first.records).toEqual([]);
    expect(first.leftConfiguration).toEqual([]);
    expect(first.removedButConfigured).toEqual([]);
    expect(first.changedByConfiguration).toEqual([]);
  });
});
