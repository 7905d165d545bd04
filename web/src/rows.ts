/**
 * The page's copy of the pool: one plain row per key, built from the KeyStatus messages that
 * WatchKeys (or ListKeys) sends. Rows hold numbers and strings only, so that sorting and
 * filtering 100,000 of them stays cheap.
 */
import type { Timestamp } from "@bufbuild/protobuf/wkt";
import { KeyState, Provider, type KeyStatus } from "../../gen/ts/keypool/v1/keypool_pb";

export interface KeyRow {
  hash: string;
  provider: string;
  families: string[];
  familiesText: string;
  state: string;
  reason: string;
  readyAt: number;
  rateLimitedAt: number;
  lastUsed: number;
  lastChecked: number;
  inFlight: number;
  leaseCount: number;
  /** Input + output tokens over every family. */
  tokens: number;
  usage: { family: string; input: number; output: number; prompts: number }[];
  organizationId: string;
  trial: boolean;
  /** Lower-case text the search box matches. */
  search: string;
}

const PROVIDER_NAMES: Record<number, string> = {
  [Provider.OPENAI]: "openai",
  [Provider.ANTHROPIC]: "anthropic",
  [Provider.GOOGLE_AI]: "google",
  [Provider.MISTRAL]: "mistral",
  [Provider.AZURE_OPENAI]: "azure",
  [Provider.AWS_BEDROCK]: "bedrock",
  [Provider.GCP_VERTEX]: "vertex",
};
const STATE_NAMES: Record<number, string> = {
  [KeyState.ACTIVE]: "active",
  [KeyState.DISABLED]: "disabled",
  [KeyState.REVOKED]: "revoked",
  [KeyState.OVER_QUOTA]: "over_quota",
};

function ms(t: Timestamp | undefined): number {
  return t ? Number(t.seconds) * 1000 + Math.floor(t.nanos / 1e6) : 0;
}

export function rowFromStatus(k: KeyStatus): KeyRow {
  const usage = Object.entries(k.usage)
    .map(([family, u]) => ({ family, input: Number(u.inputTokens), output: Number(u.outputTokens), prompts: Number(u.prompts) }))
    .sort((a, b) => (a.family < b.family ? -1 : 1));
  const provider = PROVIDER_NAMES[k.provider] ?? `provider ${k.provider}`;
  const state = STATE_NAMES[k.state] ?? "unknown";
  const familiesText = k.modelFamilies.join(", ");
  return {
    hash: k.keyHash,
    provider,
    families: k.modelFamilies,
    familiesText,
    state,
    reason: k.stateReason,
    readyAt: ms(k.readyAt),
    rateLimitedAt: ms(k.rateLimitedAt),
    lastUsed: ms(k.lastUsed),
    lastChecked: ms(k.lastChecked),
    inFlight: k.inFlight,
    leaseCount: Number(k.leaseCount),
    tokens: usage.reduce((sum, u) => sum + u.input + u.output, 0),
    usage,
    organizationId: k.organizationId,
    trial: k.trial,
    search: `${k.keyHash} ${provider} ${familiesText} ${state} ${k.stateReason}`.toLowerCase(),
  };
}

/** What one applied change did to the totals the chart follows. */
export interface Delta {
  leases: number;
  tokens: number;
}

/**
 * Every key the page knows, by hash. A snapshot replaces them all (after a reconnect, keys that
 * left meanwhile go); each update replaces one row. `version` moves on every change, so views
 * know when to recompute.
 */
export class KeyRows {
  readonly byHash = new Map<string, KeyRow>();
  version = 0;

  replaceAll(statuses: readonly KeyStatus[]): void {
    this.byHash.clear();
    for (const status of statuses) this.byHash.set(status.keyHash, rowFromStatus(status));
    this.version++;
  }

  update(status: KeyStatus): Delta {
    const row = rowFromStatus(status);
    const old = this.byHash.get(row.hash);
    this.byHash.set(row.hash, row);
    this.version++;
    // A key seen for the first time brings its history with it: that is not traffic.
    if (!old) return { leases: 0, tokens: 0 };
    return { leases: Math.max(0, row.leaseCount - old.leaseCount), tokens: Math.max(0, row.tokens - old.tokens) };
  }

  remove(hash: string): void {
    if (this.byHash.delete(hash)) this.version++;
  }

  get size(): number {
    return this.byHash.size;
  }
}
