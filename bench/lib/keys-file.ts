/**
 * Writes a keys file (KEYPOOL_KEYS_FILE) of `count` made-up keys, the size of real ones (51
 * characters), each serving its provider's default families: OpenAI keys, which the benches'
 * Leases reach, and on request Anthropic keys, which they do not. Deterministic, so runs compare.
 */
import { writeFileSync } from "node:fs";

export function benchKey(i: number): string {
  return `sk-bench${i.toString().padStart(43, "0")}`;
}

export interface KeysFileOptions {
  /**
   * One Anthropic key more, which no OpenAI Lease touches: the fan-out benches change it alone to
   * time a change's arrival (bench/watch-fanout.ts).
   */
  withMarker?: boolean;
  /**
   * How many of the `count` keys are OpenAI keys, which the benches' Leases reach (default all);
   * the others are Anthropic keys: a pool of `count` keys whose Leases rotate through only these.
   */
  leasable?: number;
}

export function writeKeysFile(file: string, count: number, options: KeysFileOptions = {}): void {
  const leasable = Math.min(options.leasable ?? count, count);
  const specs: { provider: string; key: string }[] = new Array(count);
  for (let i = 0; i < leasable; i++) specs[i] = { provider: "openai", key: benchKey(i) };
  for (let i = leasable; i < count; i++) specs[i] = { provider: "anthropic", key: `sk-ant-${benchKey(i)}` };
  if (options.withMarker) specs.push({ provider: "anthropic", key: `sk-ant-bench-marker-${benchKey(0)}` });
  writeFileSync(file, JSON.stringify(specs));
}

/** A pool a bench asks for: its size, and how many of its keys the Leases reach. */
export interface Pool {
  keys: number;
  /** How many of them the Leases reach. */
  leasable: number;
  /** For file names: `100000`, `100000-10`. */
  label: string;
  /** For tables: `100000 keys`, `100000 keys (Leases reach 10)`. */
  name: string;
}

/** `100000` or `100000@10` (100,000 keys, 10 of them reached by the Leases). */
export function poolOf(spec: string): Pool {
  const [keys, leasable = keys] = spec.split("@").map(Number);
  if (!Number.isInteger(keys) || keys < 1 || !Number.isInteger(leasable) || leasable < 1 || leasable > keys!) {
    throw new Error(`--keys: "${spec}" is not a key count or <keys>@<keys the Leases reach>`);
  }
  return {
    keys: keys!,
    leasable: leasable!,
    label: leasable === keys ? `${keys}` : `${keys}-${leasable}`,
    name: leasable === keys ? `${keys} keys` : `${keys} keys (Leases reach ${leasable})`,
  };
}

/**
 * A Lease bench's server settings: keys from `keysFile`, no hold after a Lease (so that a few keys
 * serve any rate), and `state` as KEYPOOL_STATE when given (else the server's own fresh state
 * file, bench/lib/keypool-server.ts).
 */
export function leaseBenchEnv(keysFile: string, state: string): Record<string, string> {
  return { KEYPOOL_KEYS_FILE: keysFile, KEYPOOL_REUSE_DELAY: "0", ...(state ? { KEYPOOL_STATE: state } : {}) };
}
