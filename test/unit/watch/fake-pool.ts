import { freshKeyStatus } from "../../../src/domain/key-entry";
import { ChangeFeed } from "../../../src/domain/change-feed";
import { StatusView } from "../../../src/domain/key-view";
import type { KeyStatus, KeyView, PoolEvent, ProviderId } from "../../../src/domain/types";
import type { WatchedPool } from "../../../src/domain/pool-api";
import { keyMatches } from "../../../src/domain/key-filter";

/** A pool reduced to what the hub reads: statuses by hash and one event per change. */
export class FakePool implements WatchedPool {
  readonly changes = new ChangeFeed<PoolEvent>();
  private readonly statuses = new Map<string, KeyStatus>();
  /** Statuses the hub read one by one (getKey), to send them. */
  reads = 0;

  listKeys(filter: { provider?: ProviderId; modelFamilies?: string[] } = {}): KeyStatus[] {
    return [...this.statuses.values()]
      .filter((s) => keyMatches(filter, s))
      .sort((a, b) => (a.keyHash < b.keyHash ? -1 : 1));
  }

  *keysAfter(after: string, filter: { provider?: ProviderId; modelFamilies?: readonly string[] } = {}): Generator<KeyStatus> {
    for (const status of this.listKeys({ provider: filter.provider, modelFamilies: filter.modelFamilies ? [...filter.modelFamilies] : undefined })) {
      if (status.keyHash > after) yield status;
    }
  }

  getKey(keyHash: string): KeyStatus | undefined {
    this.reads++;
    return this.statuses.get(keyHash);
  }

  *viewKeys(): Generator<KeyView> {
    for (const status of this.statuses.values()) yield new StatusView(status);
  }

  put(status: KeyStatus): KeyStatus {
    this.statuses.set(status.keyHash, status);
    this.changes.publish({ type: "updated", cause: "reported", key: new StatusView(status) });
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
  const provider = keyHash.startsWith("ant-") ? "anthropic" : "openai";
  const families = provider === "anthropic" ? ["claude"] : ["turbo", "gpt4"];
  return { ...freshKeyStatus(keyHash, provider, families), ...patch };
}
