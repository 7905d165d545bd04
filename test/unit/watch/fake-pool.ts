import { ChangeFeed } from "../../../src/domain/change-feed";
import type { KeyStatus, PoolEvent, ProviderId } from "../../../src/domain/types";
import type { WatchedPool } from "../../../src/watch/watch-hub";
import { matchesFilter } from "../../../src/watch/watch-filter";

/** A pool reduced to what the hub reads: statuses by hash and one event per change. */
export class FakePool implements WatchedPool {
  readonly changes = new ChangeFeed<PoolEvent>();
  private readonly statuses = new Map<string, KeyStatus>();

  listKeys(filter: { provider?: ProviderId; modelFamilies?: string[] } = {}): KeyStatus[] {
    return [...this.statuses.values()]
      .filter((s) => matchesFilter(filter, s))
      .sort((a, b) => (a.keyHash < b.keyHash ? -1 : 1));
  }

  put(status: KeyStatus): KeyStatus {
    this.statuses.set(status.keyHash, status);
    this.changes.publish({ type: "updated", cause: "reported", status });
    return status;
  }

  change(keyHash: string, patch: Partial<KeyStatus>): KeyStatus {
    const before = this.statuses.get(keyHash);
    if (!before) throw new Error(`no key ${keyHash}`);
    return this.put({ ...before, ...patch });
  }

  remove(keyHash: string): void {
    const before = this.statuses.get(keyHash);
    if (!before) throw new Error(`no key ${keyHash}`);
    this.statuses.delete(keyHash);
    this.changes.publish({ type: "removed", keyHash, provider: before.provider, modelFamilies: before.modelFamilies });
  }
}

export function status(keyHash: string, patch: Partial<KeyStatus> = {}): KeyStatus {
  return {
    keyHash,
    provider: keyHash.startsWith("ant-") ? "anthropic" : "openai",
    modelFamilies: keyHash.startsWith("ant-") ? ["claude"] : ["turbo", "gpt4"],
    organizationId: "",
    trial: false,
    state: "active",
    stateReason: "",
    readyAt: 0,
    holdUntil: 0,
    cooldownUntil: 0,
    rateLimitedAt: 0,
    lastUsed: 0,
    lastChecked: 0,
    promptCount: 0,
    usage: {},
    inFlight: 0,
    leaseCount: 0,
    ...patch,
  };
}
