import { freshKeyStatus } from "../../../src/domain/key-entry";
import type { KeyStatus } from "../../../src/domain/types";
import type { StorageLogger } from "../../../src/storage/durable-state";

/** A plausible key status; `extra` overrides any field. */
export function keyStatus(keyHash: string, extra: Partial<KeyStatus> = {}): KeyStatus {
  const provider = keyHash.startsWith("ant-") ? "anthropic" : "openai";
  const families = provider === "anthropic" ? ["claude"] : ["turbo", "gpt4"];
  return { ...freshKeyStatus(keyHash, provider, families), ...extra };
}

/** Keeps what the storage logs, to assert on its lines. */
export class RecordingLogger implements StorageLogger {
  readonly lines: Array<{ level: string; fields: Record<string, unknown>; message: string }> = [];
  info(fields: object, message: string) {
    this.lines.push({ level: "info", fields: fields as Record<string, unknown>, message });
  }
  warn(fields: object, message: string) {
    this.lines.push({ level: "warn", fields: fields as Record<string, unknown>, message });
  }
  error(fields: object, message: string) {
    this.lines.push({ level: "error", fields: fields as Record<string, unknown>, message });
  }
}
