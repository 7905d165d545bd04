import { freshKeyStatus } from "../../../src/domain/key-entry";
import type { KeyStatus } from "../../../src/domain/types";

/** A plausible key status; `extra` overrides any field. */
export function keyStatus(keyHash: string, extra: Partial<KeyStatus> = {}): KeyStatus {
  const provider = keyHash.startsWith("ant-") ? "anthropic" : "openai";
  const families = provider === "anthropic" ? ["claude"] : ["turbo", "gpt4"];
  return { ...freshKeyStatus(keyHash, provider, families), ...extra };
}
