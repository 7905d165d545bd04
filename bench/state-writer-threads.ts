/**
 * Where a Lease's CPU goes, thread by thread, on keypool servers with their own state files: each
 * round sends Leases on the native port, then waits for the lazy write of their soft state to be
 * committed, and prints every thread's CPU time per Lease over the round and its commit. The
 * commit worker is the thread that appears with a state file and not with `--state=memory`.
 * With `--baseline=<dir>[,<dir>...]` (built source trees), each build's server runs the same
 * rounds, in turns whose order alternates.
 *
 *   npx tsx bench/state-writer-threads.ts [--keys=100000] [--warm=3000] [--rounds=3] [--requests=15000] [--state=memory] [--baseline=/tmp/before] [--main=<dist/src/main.js of another build, alone>]
 *
 * With the default `--warm`, every Lease of the rounds is its key's first (a new row); with
 * `--warm` above `--keys`, every key has its row before the rounds (an update of the row, or of
 * its soft row where the build writes one).
 */
import { readdirSync, readFileSync } from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { coreLayout, sleep } from "./lib/children";
import { h2load } from "./lib/h2load";
import { LEASE, leaseOnce, leaseRequestBytes } from "./lib/keypool-rpc";
import { startKeypool } from "./lib/keypool-server";
import { leaseBenchEnv, writeKeysFile } from "./lib/keys-file";
import { benchArg, buildsToCompare } from "./lib/ab-args";

function threadCpuMs(pid: number): Map<string, number> {
  const out = new Map<string, number>();
  for (const tid of readdirSync(`/proc/${pid}/task`)) {
    try {
      const stat = readFileSync(`/proc/${pid}/task/${tid}/stat`, "utf8");
      const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
      out.set(tid, (Number(fields[11]) + Number(fields[12])) * 10);
    } catch {
      // the thread ended
    }
  }
  return out;
}

async function main(): Promise<void> {
  const keys = Number(benchArg("keys", "100000"));
  const warm = Number(benchArg("warm", "3000"));
  const rounds = Number(benchArg("rounds", "3"));
  const requests = Number(benchArg("requests", "15000"));
  const state = benchArg("state", "");
  const cores = coreLayout();
  const keysFile = path.join(os.tmpdir(), `keypool-ab-keys-${keys}.json`);
  writeKeysFile(keysFile, keys);
  const env = leaseBenchEnv(keysFile, state);
  const shape = { requests, connections: 4, streamsPerConnection: 16 };
  const body = leaseRequestBytes();
  const servers: Array<{ label: string; server: Awaited<ReturnType<typeof startKeypool>> }> = [];
  try {
    // `--main=<dist/src/main.js>`: that build alone, instead of this one.
    const mainJs = benchArg("main", "");
    for (const build of mainJs ? [{ label: mainJs, main: mainJs }] : buildsToCompare()) {
      const server = await startKeypool({ env, cpus: cores.server, nativePort: true, ...(build.main ? { main: build.main } : {}) });
      servers.push({ label: build.label, server });
      await leaseOnce(server.port);
      await h2load(server.grpcPort!, LEASE, body, { ...shape, requests: warm }, cores.load);
      await sleep(2500);
    }
    for (let round = 1; round <= rounds; round++) {
      const turn = round % 2 === 1 ? servers : [...servers].reverse();
      for (const { label, server } of turn) {
        const before = threadCpuMs(server.pid);
        const r = await h2load(server.grpcPort!, LEASE, body, shape, cores.load);
        if (r.failed) throw new Error(`${r.failed} Leases failed`);
        // The lazy write (within 1 s of a Lease) and its commit.
        await sleep(2500);
        const after = threadCpuMs(server.pid);
        const rows = [...after]
          .map(([tid, ms]) => ({ tid, us: ((ms - (before.get(tid) ?? 0)) * 1000) / r.requests }))
          .filter((t) => t.us > 0)
          .sort((a, b) => b.us - a.us);
        const total = rows.reduce((s, t) => s + t.us, 0);
        const main = rows.find((t) => t.tid === String(server.pid))?.us ?? 0;
        process.stdout.write(
          `round ${round}, ${label}: ${Math.round(r.rps)} Lease/s; CPU per Lease ${total.toFixed(1)} µs: main thread ${main.toFixed(1)}, others ${rows
            .filter((t) => t.tid !== String(server.pid))
            .map((t) => `${t.tid} ${t.us.toFixed(1)}`)
            .join(", ")}\n`,
        );
      }
    }
  } finally {
    for (const { server } of servers) await server.stop();
  }
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
