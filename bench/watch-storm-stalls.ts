/**
 * The open storm seen from inside the server: 1,000 WatchKeys watchers open at once on 1,000 keys
 * (bench/watch-audience.ts, mode read) and the server reports every event-loop stall over 16 ms
 * (bench/lib/loop-stalls.cjs). A call that arrives during a stall waits for it, so the stalls are
 * what the storm's probe p99 (bench/watch-memory.bench.ts) measures from outside, without the
 * probe's own scheduling on a shared machine. This build and another one, alternating.
 *
 *     npm run build && npx tsx bench/watch-storm-stalls.ts --baseline=<built source tree> [--port=main|native] [--rounds=2] [--renice]
 *
 * `--renice` runs the server at nice -15 (root only), so that other work on a shared machine
 * takes less of its core.
 */
import { execFileSync } from "node:child_process";
import { readdirSync } from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { coreLayout, cpuMs, sleep, start } from "./lib/children";
import { ROOT, startKeypool } from "./lib/keypool-server";
import { writeKeysFile } from "./lib/keys-file";

interface StormStalls {
  syncedMs: number;
  serverCpuMs: number;
  /** Stalls over 16 ms from the storm's start to the last snapshot, in ms, in order. */
  stalls: number[];
}

async function storm(listener: "main" | "native", main: string | undefined, renice: boolean, keysFile: string): Promise<StormStalls> {
  const cores = coreLayout();
  const server = await startKeypool({
    env: { KEYPOOL_KEYS_FILE: keysFile, KEYPOOL_STATE: "memory", KEYPOOL_MAX_WATCHERS: "1010" },
    cpus: cores.server,
    nativePort: listener === "native",
    nodeArgs: ["--require", path.join(ROOT, "bench", "lib", "loop-stalls.cjs")],
    main,
  });
  if (renice) {
    for (const task of readdirSync(`/proc/${server.pid}/task`)) execFileSync("renice", ["-n", "-15", "-p", task]);
  }
  const port = listener === "native" ? server.grpcPort! : server.port;
  try {
    await sleep(1000);
    const config = { port, watchers: 1000, connections: 10, mode: "read", batch: true, method: "watch" };
    const cpu0 = cpuMs(server.pid);
    const watchers = start(process.execPath, ["--import", "tsx", path.join(ROOT, "bench", "watch-audience.ts"), JSON.stringify(config)], cores.load, { cwd: ROOT, niceness: 19 });
    try {
      let synced: RegExpExecArray | null = null;
      while (!(synced = /SYNCED (\d+)/.exec(watchers.stdout()))) {
        if (watchers.child.exitCode !== null) throw new Error(`watch audience exited:\n${watchers.stderr().slice(-2000)}`);
        await sleep(20);
      }
      const end = Date.now();
      const serverCpuMs = cpuMs(server.pid) - cpu0;
      const syncedMs = Number(synced[1]);
      const begin = end - syncedMs;
      const stalls = server.proc
        .stderr()
        .split("\n")
        .filter((line) => line.startsWith("STALL "))
        .map((line) => line.split(" ").map(Number) as [unknown, number, number])
        .filter(([, at]) => at >= begin - 50 && at <= end)
        .map(([, , ms]) => ms);
      return { syncedMs, serverCpuMs, stalls };
    } finally {
      await watchers.kill();
    }
  } finally {
    await server.stop();
  }
}

async function main(): Promise<void> {
  const value = (name: string) => process.argv.find((a) => a.startsWith(`--${name}=`))?.slice(name.length + 3);
  const listener = (value("port") ?? "main") as "main" | "native";
  if (listener !== "main" && listener !== "native") throw new Error("--port must be main or native");
  const baseline = value("baseline");
  const rounds = Number(value("rounds") ?? "2");
  const renice = process.argv.includes("--renice");
  const keysFile = path.join(os.tmpdir(), "keypool-storm-stalls-keys.json");
  writeKeysFile(keysFile, 1000);
  const builds: { label: string; main?: string }[] = [{ label: "this build" }];
  if (baseline) builds.push({ label: "baseline", main: path.resolve(baseline, "dist", "src", "main.js") });
  for (let round = 0; round < rounds; round++) {
    for (const build of round % 2 === 0 ? builds : [...builds].reverse()) {
      const r = await storm(listener, build.main, renice, keysFile);
      const sorted = [...r.stalls].sort((a, b) => b - a);
      console.log(
        `${listener} port, ${build.label}: synced in ${r.syncedMs} ms, server CPU ${r.serverCpuMs} ms; ${r.stalls.length} stalls over 16 ms, longest ${sorted.slice(0, 5).map((ms) => ms.toFixed(0)).join(", ")} ms; in order: ${r.stalls.map((ms) => ms.toFixed(0)).join(" ")}`,
      );
    }
  }
}

main().catch((error) => {
  console.error(error);
  process.exit(1);
});
