/**
 * Writes a keys file (KEYPOOL_KEYS_FILE) of `count` made-up OpenAI keys, the size of real ones
 * (51 characters), each serving the default families. Deterministic, so runs compare.
 */
import { writeFileSync } from "node:fs";

export function benchKey(i: number): string {
  return `sk-bench${i.toString().padStart(43, "0")}`;
}

export function writeKeysFile(file: string, count: number): void {
  const specs = new Array(count);
  for (let i = 0; i < count; i++) specs[i] = { provider: "openai", key: benchKey(i) };
  writeFileSync(file, JSON.stringify(specs));
}
