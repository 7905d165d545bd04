/**
 * BENCHMARKS.md §4 side by side: start to SERVING, the server's CPU time until then, and RSS one
 * second after, with 100,000 keys from a keys file, for this build and the builds named by
 * `--baseline`, started in turn (the order turning each round) so that the machine's drift falls
 * on every build alike. The variants are bench/startup-memory.ts's: a new state file, a restart on
 * it, a restart where every key has its stored row, and KEYPOOL_STATE=memory.
 *
 *   npx tsx bench/startup-ab.ts --baseline=/tmp/before [--rounds=3] [--keys=100000] [--variants=first,restart,rows,memory]
 *
 * A baseline is a built source tree (its dist/src/main.js runs). Not a test: figures depend on
 * the machine. BENCHMARKS.md records them.
 */
import { mkdtempSync, rmSync } from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { benchArg, buildsToCompare } from "./lib/ab-args";
import { coreLayout } from "./lib/children";
import { writeKeysFile } from "./lib/keys-file";
import { median } from "./lib/stats";
import { EVERY_ROW, FIRST, MEMORY, RESTART, startOnce, stateFileWithEveryRow, type StartOnce } from "./startup-memory";

const VARIANTS: Record<string, string> = { first: FIRST, restart: RESTART, rows: EVERY_ROW, memory: MEMORY };

async function main(): Promise<void> {
  const rounds = Number(benchArg("rounds", "3"));
  const keys = Number(benchArg("keys", "100000"));
  const variants = benchArg("variants", "first,restart,rows,memory").split(",").filter((v) => v in VARIANTS);
  const builds = buildsToCompare();
  const cores = coreLayout();
  const log = (s: string) => console.log(s);
  const tmp = mkdtempSync(path.join(os.tmpdir(), "keypool-startup-ab-"));
  const keysFile = path.join(tmp, `keys-${keys}.json`);
  writeKeysFile(keysFile, keys);
  // One state file with every row, copied for each start: a start may write to it.
  const results = builds.map(() => new Map<string, StartOnce[]>(variants.map((v) => [v, []])));
  try {
    for (let round = 0; round < rounds; round++) {
      const order = builds.map((_, i) => (i + round) % builds.length);
      for (const variant of variants) {
        for (const b of order) {
          const build = builds[b]!;
          const name = `${VARIANTS[variant]}, ${build.label}`;
          let env: Record<string, string>;
          let cleanup = () => {};
          if (variant === "memory") {
            env = { KEYPOOL_STATE: "memory" };
          } else if (variant === "rows") {
            const rows = stateFileWithEveryRow(keysFile);
            env = { KEYPOOL_STATE: rows.file };
            cleanup = () => rmSync(rows.dir, { recursive: true, force: true });
          } else {
            const dir = mkdtempSync(path.join(tmp, "state-"));
            env = { KEYPOOL_STATE: path.join(dir, "keypool.db") };
            cleanup = () => rmSync(dir, { recursive: true, force: true });
            if (variant === "restart") {
              // The restart's file is the one a first start of the same build made.
              await startOnce(`${FIRST} (to make the file), ${build.label}`, round + 1, keysFile, keys, env, cores, log, false, build.main);
            }
          }
          try {
            results[b]!.get(variant)!.push(await startOnce(name, round + 1, keysFile, keys, env, cores, log, round === 0, build.main));
          } finally {
            cleanup();
          }
        }
      }
    }
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
  console.log(`\n${keys} keys from a keys file, medians of ${rounds} (each run's figure in brackets)\n`);
  console.log(`| variant | build | start to SERVING | CPU until SERVING | RSS 1 s after |`);
  console.log(`|---|---|---|---|---|`);
  for (const variant of variants) {
    builds.forEach((build, b) => {
      const runs = results[b]!.get(variant)!;
      const all = (pick: (r: StartOnce) => number, digits: number) =>
        `${median(runs.map(pick)).toFixed(digits)} (${runs.map((r) => pick(r).toFixed(digits)).join(", ")})`;
      const loaded = runs.find((r) => r.keysLoaded !== keys);
      if (loaded) throw new Error(`${build.label}, ${VARIANTS[variant]}: ${loaded.keysLoaded} keys loaded, not ${keys}`);
      console.log(`| ${VARIANTS[variant]} | ${build.label} | ${all((r) => r.startMs, 0)} ms | ${all((r) => r.startCpuMs, 0)} ms | ${all((r) => r.rssMiB, 1)} MiB |`);
    });
  }
  console.log(`\nload average at the end: ${os.loadavg().map((x) => x.toFixed(2)).join(" ")}`);
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
