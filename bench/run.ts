/**
 * `npm run bench`: the whole benchmark suite in one run, printing one summary table and writing
 * bench/results/latest.json. `--quick` for a smoke run (fewer requests, one round);
 * `--only=e2e,fanout,startup,pool,durability,checker,replicas` to run some sections; `--no-build` to skip
 * `npm run build` (the server runs from dist/).
 *
 * Layout: the measured server on core 0, every load generator on the other core(s), with
 * taskset. Each end-to-end figure is the median of several rounds that alternate Lease and Check.
 */
import { execFileSync } from "node:child_process";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { coreLayout } from "./lib/children";
import { ROOT, startConnectNoop, startGrpcJsNoop, startKeypool } from "./lib/keypool-server";
import { writeKeysFile } from "./lib/keys-file";
import { CellResult, measureServer, Shapes } from "./end-to-end";
import { FanoutResult, measureFanout } from "./watch-fanout";
import { measureStartup, StartupResult } from "./startup-memory";
import { renderTable, type MachineInfo, type SuiteResults } from "./report";
import { runSuiteModule, SuiteModuleResult } from "./suite-modules";

const SECTIONS = ["e2e", "fanout", "startup", "pool", "durability", "checker", "replicas"] as const;
type Section = (typeof SECTIONS)[number];

function parseArgs(argv: string[]) {
  const quick = argv.includes("--quick");
  const noBuild = argv.includes("--no-build");
  const only = argv.find((a) => a.startsWith("--only="));
  const sections = new Set<Section>(only ? (only.slice(7).split(",") as Section[]) : SECTIONS);
  for (const s of sections) if (!SECTIONS.includes(s)) throw new Error(`unknown section ${s}; known: ${SECTIONS.join(", ")}`);
  return { quick, noBuild, sections };
}

function machine(): MachineInfo {
  const cpuinfo = readFileSync("/proc/cpuinfo", "utf8");
  const model = /model name\s*:\s*(.*)/.exec(cpuinfo)?.[1] ?? "unknown";
  let h2loadVersion = "";
  try {
    h2loadVersion = execFileSync("/usr/bin/h2load", ["--version"], { encoding: "utf8" }).trim();
  } catch {
    h2loadVersion = "not installed";
  }
  return {
    date: new Date().toISOString(),
    nproc: os.availableParallelism ? os.availableParallelism() : os.cpus().length,
    cpu: model,
    node: process.version,
    h2load: h2loadVersion,
    loadAverage: os.loadavg().map((x) => Number(x.toFixed(2))),
    memoryGiB: Number((os.totalmem() / 2 ** 30).toFixed(1)),
  };
}


async function main(): Promise<void> {
  const args = parseArgs(process.argv.slice(2));
  const t0 = performance.now();
  const log = (line: string) => process.stderr.write(line + "\n");
  const cores = coreLayout();
  const results: SuiteResults = { machine: machine(), quick: args.quick, cores: cores.note, errors: [] };
  log(`keypool bench${args.quick ? " (quick)" : ""}: ${results.machine.nproc} cores, ${results.machine.cpu}, node ${results.machine.node}; ${cores.note}`);

  if (!args.noBuild && (args.sections.has("e2e") || args.sections.has("fanout") || args.sections.has("startup") || args.sections.has("replicas"))) {
    log("building (npm run build) ...");
    execFileSync("npm", ["run", "-s", "build"], { cwd: ROOT, stdio: "inherit" });
  }

  const tmp = mkdtempSync(path.join(os.tmpdir(), "keypool-bench-"));
  const keys10 = path.join(tmp, "keys-10.json");
  const keys100k = path.join(tmp, "keys-100000.json");
  const keys1 = path.join(tmp, "keys-1.json");
  const keysFanout = path.join(tmp, "keys-fanout.json");
  writeKeysFile(keys10, 10);
  writeKeysFile(keys100k, 100_000);
  writeKeysFile(keys1, 1);
  writeKeysFile(keysFanout, 10, { withMarker: true });

  // KEYPOOL_REUSE_DELAY=0: a leased key is ready again at once, so that 10 keys sustain any Lease
  // rate and every Lease succeeds. Logs at warn: a log line per call would measure the logger.
  const env = { KEYPOOL_REUSE_DELAY: "0", KEYPOOL_LOG_LEVEL: "warn" };
  const shapes: Shapes = args.quick
    ? { h2load: { requests: 5000, connections: 4, streamsPerConnection: 16 }, connect: { requests: 3000, connections: 4, streamsPerConnection: 16 }, rounds: 1, secondsPerRun: 1.5 }
    : { h2load: { requests: 60_000, connections: 4, streamsPerConnection: 16 }, connect: { requests: 30_000, connections: 4, streamsPerConnection: 16 }, rounds: 3, secondsPerRun: 4 };
  results.shapes = shapes;

  const section = async (name: Section, body: () => Promise<void>) => {
    if (!args.sections.has(name)) return;
    log(`== ${name}`);
    try {
      await body();
    } catch (e) {
      const error = e instanceof Error ? e.message : String(e);
      results.errors.push({ section: name, error });
      log(`  ${name} FAILED: ${error}`);
    }
  };

  try {
    await section("e2e", async () => {
      results.e2e = [];
      for (const [name, file] of [["keypool, 10 keys", keys10], ["keypool, 100,000 keys", keys100k]] as const) {
        const server = await startKeypool({ env: { ...env, KEYPOOL_KEYS_FILE: file }, cpus: cores.server, nativePort: true });
        try {
          results.e2e.push(...(await measureServer(name, server, shapes, cores, true, log)));
          // The same process, its native gRPC port (KEYPOOL_GRPC_PORT).
          const nativeName = name.replace("keypool,", "keypool native port,");
          results.e2e.push(...(await measureServer(nativeName, { ...server, port: server.grpcPort! }, shapes, cores, true, log)));
          log(`  ${name}: server RSS after the load ${server.rssMiB().toFixed(1)} MiB`);
        } finally {
          await server.stop();
        }
      }
      for (const [name, startNoop] of [["grpc-js no-op", startGrpcJsNoop], ["connect-node no-op", startConnectNoop]] as const) {
        const noop = await startNoop(cores.server);
        try {
          results.e2e.push(...(await measureServer(name, noop, shapes, cores, false, log)));
        } finally {
          await noop.stop();
        }
      }
    });

    await section("fanout", async () => {
      results.fanout = [];
      for (const port of ["main", "native"] as const) {
        // First with the pool idle but for the probes (the floor: the coalescing window plus one
        // change sent to every subscriber), then leasing at half the Lease maximum measured on the
        // same server just before.
        for (const rate of [0, "half-max"] as const) {
          const { latencies: _kept, ...result } = await measureFanout(
            keysFanout,
            // Batched, as keypool-watch and the dashboard ask for it.
            { subscribers: 1000, coalesceMs: 100, leaseRate: rate, durationS: args.quick ? 5 : rate === 0 ? 10 : 20, probeIntervalMs: 300, port, batch: true },
            cores,
            env,
            log,
          );
          results.fanout.push(result);
        }
      }
    });

    await section("startup", async () => {
      results.startup = await measureStartup(keys100k, 100_000, keys1, args.quick ? 1 : 3, cores, env, log);
    });

    await section("pool", async () => {
      results.pool = await runSuiteModule(path.join(ROOT, "bench", "pool-selection.bench.ts"), args.quick, log);
    });

    await section("durability", async () => {
      results.durability = await runSuiteModule(path.join(ROOT, "bench", "durability.bench.ts"), args.quick, log);
    });

    await section("checker", async () => {
      results.checker = await runSuiteModule(path.join(ROOT, "bench", "checker.bench.ts"), args.quick, log);
    });

    await section("replicas", async () => {
      results.replicas = await runSuiteModule(path.join(ROOT, "bench", "replicas.bench.ts"), args.quick, log);
    });
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }

  results.machine.loadAverageAtEnd = os.loadavg().map((x) => Number(x.toFixed(2)));
  results.elapsedS = Number(((performance.now() - t0) / 1000).toFixed(1));
  const dir = path.join(ROOT, "bench", "results");
  mkdirSync(dir, { recursive: true });
  writeFileSync(path.join(dir, "latest.json"), JSON.stringify(results, null, 2) + "\n");
  process.stdout.write(renderTable(results) + "\n");
  log(`results: bench/results/latest.json (${results.elapsedS} s)`);
  process.exit(results.errors.length > 0 ? 1 : 0);
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});

