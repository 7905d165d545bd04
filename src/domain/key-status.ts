import type { KeyStatus, ProviderId } from "./types";

/** The status of a key nothing has happened to yet: active, ready, never used. */
export function freshKeyStatus(keyHash: string, provider: ProviderId, modelFamilies: readonly string[]): KeyStatus {
  return {
    keyHash,
    provider,
    modelFamilies: [...modelFamilies],
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
  };
}
