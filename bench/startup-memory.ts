/**
 * Section 4: how long keypool takes from process start to Health SERVING with a keys file of
 * 100,000 keys, and its resident memory once they are loaded. Each run starts a fresh server
 * (median of several); RSS is read from /proc after SERVING and a short settle, before any
 * request that would allocate (a ListKeys of the whole pool comes after, to check the count).
 */
import { CoreLayout, sleep } from "./lib/children";
import { poolTotals } from "./lib/keypool-rpc";
import { startKeypool } from "./lib/keypool-server";
import { median } from "./lib/stats";

export interface StartupResult {
  keys: number;
  runs: { startMs: number; rssMiB: number }[];
  startMs: number;
  rssMiB: number;
  baselineRssMiB: number;
  keysLoaded: number;
}

export async function measureStartup(keysFile: string, keys: number, emptyKeysFile: string, runs: number, cores: CoreLayout, env: Record<string, string>, log: (s: string) => void): Promise<StartupResult> {
  const results: { startMs: number; rssMiB: number }[] = [];
  let keysLoaded = 0;
  for (let i = 0; i < runs; i++) {
    const server = await startKeypool({ env: { ...env, KEYPOOL_KEYS_FILE: keysFile }, cpus: cores.server });
    try {
      await sleep(1000);
      const rss = server.rssMiB();
      results.push({ startMs: server.startMs, rssMiB: rss });
      log(`  start with ${keys} keys, run ${i + 1}: SERVING after ${server.startMs.toFixed(0)} ms, RSS ${rss.toFixed(1)} MiB`);
      if (i === 0) keysLoaded = (await poolTotals(server.port)).keys;
    } finally {
      await server.stop();
    }
  }
  const empty = await startKeypool({ env: { ...env, KEYPOOL_KEYS_FILE: emptyKeysFile }, cpus: cores.server });
  let baselineRssMiB = NaN;
  try {
    await sleep(1000);
    baselineRssMiB = empty.rssMiB();
    log(`  start with 1 key: SERVING after ${empty.startMs.toFixed(0)} ms, RSS ${baselineRssMiB.toFixed(1)} MiB`);
  } finally {
    await empty.stop();
  }
  return {
    keys,
    runs: results,
    startMs: median(results.map((r) => r.startMs)),
    rssMiB: median(results.map((r) => r.rssMiB)),
    baselineRssMiB,
    keysLoaded,
  };
}
