/**
 * A Lease in the pool alone, side by side: this build's KeyPool and each `--baseline=<dir>`'s
 * (its dist/), in one process, at each key count (10, 10,000 and 100,000 by default), with no
 * hold after a Lease (KEYPOOL_REUSE_DELAY=0, as the native-port benches run) and with the default
 * 1 s hold (time moves so that about one key is ready again per Lease). Every pool first leases
 * each key once; then rounds of `--leases` Leases alternate between the builds, and each cell
 * prints the median CPU time per Lease and its ratio to this build's. A full collection comes
 * before each round.
 *
 *   npx tsx bench/selection-ab.ts [--keys=10,10000,100000] [--rounds=5] [--leases=300000] [--baseline=/tmp/before]
 *
 * No transport: what keypool's own choice and bookkeeping cost, caches warm with the pool's own
 * data. A server's caches also hold the transport's, so the same difference there is larger per
 * Lease (BENCHMARKS.md, "Pool selection").
 */
import * as path from "node:path";
import { setFlagsFromString } from "node:v8";
import { runInNewContext } from "node:vm";
import type { KeyPool as KeyPoolClass } from "../src/domain/key-pool";
import type { ManualClock as ManualClockClass } from "../src/domain/clock";
import { benchKey } from "./lib/keys-file";
import { benchArg, buildsToCompare } from "./lib/ab-args";
import { median } from "./lib/stats";

interface Cell {
  build: string;
  keys: number;
  holdMs: number;
  lease: () => void;
  micros: number[];
}

function load(root: string): { KeyPool: typeof KeyPoolClass; ManualClock: typeof ManualClockClass } {
  const dist = path.join(root, "dist", "src", "domain");
  return { KeyPool: require(path.join(dist, "key-pool.js")).KeyPool, ManualClock: require(path.join(dist, "clock.js")).ManualClock };
}

function main(): void {
  const keyCounts = benchArg("keys", "10,10000,100000").split(",").map(Number);
  const rounds = Number(benchArg("rounds", "5"));
  const leases = Number(benchArg("leases", "300000"));
  const cells: Cell[] = [];
  for (const build of buildsToCompare()) {
    const { KeyPool, ManualClock } = load(build.root);
    for (const keys of keyCounts) {
      for (const holdMs of [0, 1000]) {
        const clock = new ManualClock(Date.UTC(2026, 11, 1));
        const pool = new KeyPool({ clock, reuseDelayMs: holdMs });
        pool.addKeys(Array.from({ length: keys }, (_, i) => ({ provider: "openai" as const, key: benchKey(i) })));
        // Time per Lease: none without a hold (a few Leases share a millisecond, as under load);
        // with one, the hold over the key count, so that about one key comes back per Lease.
        const stepMs = holdMs === 0 ? 0.1 : holdMs / keys;
        let owedMs = 0;
        const lease = () => {
          try {
            pool.lease({ model: "gpt-4" });
          } catch {
            // every key held: time moves on below
          }
          owedMs += stepMs;
          if (owedMs >= 1) {
            const whole = Math.floor(owedMs);
            owedMs -= whole;
            clock.advance(whole);
          }
        };
        for (let i = 0; i < keys + 1000; i++) lease();
        cells.push({ build: build.label, keys, holdMs, lease, micros: [] });
      }
    }
  }
  // Every round starts after a full collection, so that none pays for the garbage of the cells
  // before it (twelve pools share this process's heap).
  setFlagsFromString("--expose-gc");
  const collect = runInNewContext("gc") as () => void;
  for (let round = 0; round < rounds; round++) {
    for (const cell of round % 2 === 0 ? cells : [...cells].reverse()) {
      collect();
      const before = process.cpuUsage();
      for (let i = 0; i < leases; i++) cell.lease();
      const used = process.cpuUsage(before);
      cell.micros.push((used.user + used.system) / leases);
      process.stdout.write(`  round ${round + 1} ${cell.build}, ${cell.keys} keys, hold ${cell.holdMs} ms: ${cell.micros[round].toFixed(2)} µs per Lease\n`);
    }
  }
  const lines = [
    `${rounds} rounds of ${leases} Leases per cell, alternating; CPU µs per Lease, medians:`,
    `| keys | hold | ${buildsToCompare().map((b) => b.label).join(" | ")} | ${buildsToCompare().slice(1).map((b) => `${b.label} / this build`).join(" | ")} |`,
    `|---|---|${buildsToCompare().map(() => "---|").join("")}${buildsToCompare().slice(1).map(() => "---|").join("")}`,
  ];
  for (const keys of keyCounts) {
    for (const holdMs of [0, 1000]) {
      const row = cells.filter((c) => c.keys === keys && c.holdMs === holdMs).map((c) => median(c.micros));
      lines.push(`| ${keys} | ${holdMs} ms | ${row.map((m) => m.toFixed(2)).join(" | ")} | ${row.slice(1).map((m) => (m / row[0]).toFixed(2)).join(" | ")} |`);
    }
  }
  process.stdout.write(lines.join("\n") + "\n");
}

main();
