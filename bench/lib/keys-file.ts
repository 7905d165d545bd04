/**
 * Writes a keys file (KEYPOOL_KEYS_FILE) of `count` made-up OpenAI keys, the size of real ones
 * (51 characters), each serving the default families. Deterministic, so runs compare.
 */
import { writeFileSync } from "node:fs";

export function benchKey(i: number): string {
  return `sk-bench${i.toString().padStart(43, "0")}`;
}

/**
 * `withMarker`: one Anthropic key more, which no OpenAI Lease touches: the fan-out benches change
 * it alone to time a change's arrival (bench/watch-fanout.ts).
 */
export function writeKeysFile(file: string, count: number, withMarker = false): void {
  const specs: { provider: string; key: string }[] = new Array(count);
  for (let i = 0; i < count; i++) specs[i] = { provider: "openai", key: benchKey(i) };
  if (withMarker) specs.push({ provider: "anthropic", key: `sk-ant-bench-marker-${benchKey(0)}` });
  writeFileSync(file, JSON.stringify(specs));
}

/**
 * A Lease bench's server settings: keys from `keysFile`, no hold after a Lease (so that a few keys
 * serve any rate), and `state` as KEYPOOL_STATE when given (else the server's own fresh state
 * file, bench/lib/keypool-server.ts).
 */
export function leaseBenchEnv(keysFile: string, state: string): Record<string, string> {
  return { KEYPOOL_KEYS_FILE: keysFile, KEYPOOL_REUSE_DELAY: "0", ...(state ? { KEYPOOL_STATE: state } : {}) };
}
