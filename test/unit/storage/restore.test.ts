import { hashKey } from "../../../src/domain/key-hash";
import type { KeySpec } from "../../../src/domain/types";
import { planRestore } from "./plan-restore";
import type { KeyOrigin, StoredKey } from "../../../src/storage/state-store";
import { keyStatus } from "./fixtures";

function stored(spec: KeySpec, origin: KeyOrigin, extra: { removedAt?: number; promptCount?: number; inFlight?: number } = {}): StoredKey {
  const keyHash = hashKey(spec.provider, spec.key, spec.organizationId ?? "");
  return {
    record: { ...keyStatus(keyHash, { promptCount: extra.promptCount ?? 0, inFlight: extra.inFlight ?? 0 }), key: spec.key },
    origin,
    removedAt: extra.removedAt ?? 0,
  };
}

const hashOf = (spec: KeySpec) => hashKey(spec.provider, spec.key, spec.organizationId ?? "");

const kept: KeySpec = { provider: "openai", key: "sk-kept" };
const left: KeySpec = { provider: "openai", key: "sk-left" };
const runtime: KeySpec = { provider: "anthropic", key: "sk-ant-runtime" };
const removed: KeySpec = { provider: "openai", key: "sk-removed" };
const fresh: KeySpec = { provider: "openai", key: "sk-fresh" };

describe("planRestore", () => {
  const plan = planRestore(
    [
      stored(kept, "config", { promptCount: 12, inFlight: 3 }),
      stored(left, "config", { promptCount: 5 }),
      stored(runtime, "runtime", { promptCount: 8 }),
      stored(removed, "config", { removedAt: 1234 }),
    ],
    [kept, removed, fresh],
  );

  it("keeps the stored state of a key that is still configured, without its old leases", () => {
    const record = plan.records.find((r) => r.keyHash === hashOf(kept))!;
    expect(record.promptCount).toBe(12);
    expect(record.key).toBe("sk-kept");
    expect(record.inFlight).toBe(0);
  });

  it("keeps a key added at run time even though no configuration names it", () => {
    const record = plan.records.find((r) => r.keyHash === hashOf(runtime))!;
    expect(record).toMatchObject({ key: "sk-ant-runtime", promptCount: 8 });
  });

  it("leaves out a configured key that left the configuration", () => {
    expect(plan.leftConfiguration).toEqual([hashOf(left)]);
    expect(plan.records.map((r) => r.keyHash)).not.toContain(hashOf(left));
  });

  it("keeps a key removed with RemoveKey out, even while it is still configured", () => {
    expect(plan.removedButConfigured).toEqual([hashOf(removed)]);
    expect(plan.records.map((r) => r.keyHash)).not.toContain(hashOf(removed));
    expect(plan.newSpecs).not.toContain(removed);
  });

  it("adds configured keys never stored, as configured keys", () => {
    expect(plan.newSpecs).toEqual([fresh]);
  });

  it("lets the configuration decide families and the trial flag when it states them", () => {
    const withFamilies: KeySpec = { ...kept, modelFamilies: ["gpt4o"], trial: true };
    const [record] = planRestore([stored(kept, "config")], [withFamilies]).records;
    expect(record!.modelFamilies).toEqual(["gpt4o"]);
    expect(record!.trial).toBe(true);
    expect(planRestore([stored(kept, "config")], [withFamilies]).changedByConfiguration).toEqual([hashOf(kept)]);
    const same = planRestore([stored(kept, "config")], [kept]);
    expect(same.records[0]!.modelFamilies).toEqual(["turbo", "gpt4"]);
    // Nothing to write back at start for a key the configuration did not change.
    expect(same.changedByConfiguration).toEqual([]);
  });

  it("matches organization clones by their own hash", () => {
    const clone: KeySpec = { ...kept, organizationId: "org-2" };
    const result = planRestore([stored(kept, "config")], [clone]);
    expect(result.leftConfiguration).toEqual([hashOf(kept)]);
    expect(result.newSpecs).toEqual([clone]);
  });

  it("counts a key configured twice once", () => {
    const twice = planRestore([], [fresh, { ...fresh }]);
    expect(twice.newSpecs).toHaveLength(1);
    expect(twice.configuredDuplicates).toBe(1);
  });
});
