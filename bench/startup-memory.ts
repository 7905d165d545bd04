/**
 * Section 4: how long keypool takes from process start to Health SERVING with a keys file of
 * 100,000 keys, and its resident memory once they are loaded. Each run starts a fresh server
 * (median of several): with the default durable configuration, first on a new state file (every
 * key is also written to SQLite at start), then restarted on that file (keys restored and merged
 * with the keys file, the usual restart of a service), restarted on a state file in which every key
 * has its row (as after a run in which every key was leased and reported on once: what a production
 * restart reads; bench/lib/stored-rows.ts), and with KEYPOOL_STATE=memory. RSS is read from /proc after
 * SERVING and a one-second settle, before any request that would allocate (a ListKeys of the
 * whole pool comes after it, to check that every key was loaded).
 */
import { mkdtempSync, rmSync } from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { CoreLayout, sleep } from "./lib/children";
import { poolTotals } from "./lib/keypool-rpc";
import { startKeypool } from "./lib/keypool-server";
import { median } from "./lib/stats";
import { writeEveryKeyRow } from "./lib/stored-rows";

export interface StartupVariant {
  name: string;
  runs: { startMs: number; rssMiB: number }[];
  startMs: number;
  rssMiB: number;
  keysLoaded: number;
}

export interface StartupResult {
  keys: number;
  variants: StartupVariant[];
  baselineRssMiB: number;
  baselineStartMs: number;
}

export interface StartOnce {
  startMs: number;
  /** The server's CPU time (user + system) when it first answered SERVING. */
  startCpuMs: number;
  rssMiB: number;
  keysLoaded: number;
}

/** Starts one server, waits a second after SERVING, reads its RSS, stops it. `main`: another build's entry point. */
export async function startOnce(name: string, run: number, keysFile: string, keys: number, env: Record<string, string>, cores: CoreLayout, log: (s: string) => void, countKeys: boolean, main?: string): Promise<StartOnce> {
  const server = await startKeypool({ env: { ...env, KEYPOOL_KEYS_FILE: keysFile }, cpus: cores.server, main });
  try {
    await sleep(1000);
    const rss = server.rssMiB();
    log(`  ${keys} keys, ${name}, run ${run}: SERVING after ${server.startMs.toFixed(0)} ms (CPU ${server.startCpuMs.toFixed(0)} ms), RSS ${rss.toFixed(1)} MiB`);
    const keysLoaded = countKeys ? (await poolTotals(server.port)).keys : keys;
    return { startMs: server.startMs, startCpuMs: server.startCpuMs, rssMiB: rss, keysLoaded };
  } finally {
    await server.stop();
  }
}

export const FIRST = "new state file (default, first start)";
export const RESTART = "restart with that state file";
export const EVERY_ROW = "restart, every key with its stored row";
export const MEMORY = "KEYPOOL_STATE=memory";

/** A new directory holding `keypool.db`, a state file in which every key of `keysFile` has its row. */
export function stateFileWithEveryRow(keysFile: string): { dir: string; file: string } {
  const dir = mkdtempSync(path.join(os.tmpdir(), "keypool-bench-rows-"));
  const file = path.join(dir, "keypool.db");
  writeEveryKeyRow(keysFile, file);
  return { dir, file };
}

export async function measureStartup(keysFile: string, keys: number, oneKeyFile: string, runs: number, cores: CoreLayout, env: Record<string, string>, log: (s: string) => void): Promise<StartupResult> {
  const collected = new Map<string, StartOnce[]>([[FIRST, []], [RESTART, []], [EVERY_ROW, []], [MEMORY, []]]);
  for (let i = 1; i <= runs; i++) {
    const dir = mkdtempSync(path.join(os.tmpdir(), "keypool-bench-start-"));
    try {
      const stateEnv = { ...env, KEYPOOL_STATE: path.join(dir, "keypool.db") };
      collected.get(FIRST)!.push(await startOnce(FIRST, i, keysFile, keys, stateEnv, cores, log, i === 1));
      collected.get(RESTART)!.push(await startOnce(RESTART, i, keysFile, keys, stateEnv, cores, log, i === 1));
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
    const rows = stateFileWithEveryRow(keysFile);
    try {
      collected.get(EVERY_ROW)!.push(await startOnce(EVERY_ROW, i, keysFile, keys, { ...env, KEYPOOL_STATE: rows.file }, cores, log, i === 1));
    } finally {
      rmSync(rows.dir, { recursive: true, force: true });
    }
    collected.get(MEMORY)!.push(await startOnce(MEMORY, i, keysFile, keys, { ...env, KEYPOOL_STATE: "memory" }, cores, log, i === 1));
  }
  const variants: StartupVariant[] = [...collected].map(([name, rs]) => ({
    name,
    runs: rs.map(({ startMs, rssMiB }) => ({ startMs, rssMiB })),
    startMs: median(rs.map((r) => r.startMs)),
    rssMiB: median(rs.map((r) => r.rssMiB)),
    keysLoaded: rs[0].keysLoaded,
  }));
  const one = await startOnce("1 key, new state file", 1, oneKeyFile, 1, env, cores, log, false);
  return { keys, variants, baselineRssMiB: one.rssMiB, baselineStartMs: one.startMs };
}
