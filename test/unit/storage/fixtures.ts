import type { KeyStatus } from "../../../src/domain/types";

/** A plausible key status; `extra` overrides any field. */
export function keyStatus(keyHash: string, extra: Partial<KeyStatus> = {}): KeyStatus {
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
    ...extra,
  };
}
