/**
 * Section 4: how long keypool takes from process start to Health SERVING with a keys file of
 * 100,000 keys, and its resident memory once they are loaded. Each run starts a fresh server
 * (median of several), with the default durable configuration (a new state file, so every key is
 * also written to SQLite at start) and with KEYPOOL_STATE=memory. RSS is read from /proc after
 * SERVING and a one-second settle, before any request that would allocate (a ListKeys of the
 * whole pool comes after it, to check that every key was loaded).
 */
import { CoreLayout, sleep } from "./lib/children";
import { poolTotals } from "./lib/keypool-rpc";
import { startKeypool } from "./lib/keypool-server";
import { median } from "./lib/stats";

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

export async function measureStartup(keysFile: string, keys: number, oneKeyFile: string, runs: number, cores: CoreLayout, env: Record<string, string>, log: (s: string) => void): Promise<StartupResult> {
  const variants: StartupVariant[] = [];
  for (const [name, extra] of [["new state file (default)", {}], ["KEYPOOL_STATE=memory", { KEYPOOL_STATE: "memory" }]] as const) {
    const results: { startMs: number; rssMiB: number }[] = [];
    let keysLoaded = 0;
    for (let i = 0; i < runs; i++) {
      const server = await startKeypool({ env: { ...env, ...extra, KEYPOOL_KEYS_FILE: keysFile }, cpus: cores.server });
      try {
        await sleep(1000);
        const rss = server.rssMiB();
        results.push({ startMs: server.startMs, rssMiB: rss });
        log(`  ${keys} keys, ${name}, run ${i + 1}: SERVING after ${server.startMs.toFixed(0)} ms, RSS ${rss.toFixed(1)} MiB`);
        if (i === 0) keysLoaded = (await poolTotals(server.port)).keys;
      } finally {
        await server.stop();
      }
    }
    variants.push({ name, runs: results, startMs: median(results.map((r) => r.startMs)), rssMiB: median(results.map((r) => r.rssMiB)), keysLoaded });
  }
  const one = await startKeypool({ env: { ...env, KEYPOOL_KEYS_FILE: oneKeyFile }, cpus: cores.server });
  let baselineRssMiB = NaN;
  try {
    await sleep(1000);
    baselineRssMiB = one.rssMiB();
    log(`  1 key: SERVING after ${one.startMs.toFixed(0)} ms, RSS ${baselineRssMiB.toFixed(1)} MiB`);
  } finally {
    await one.stop();
  }
  return { keys, variants, baselineRssMiB, baselineStartMs: one.startMs };
}
