/**
 * Durability: IncrementUsage calls per second over gRPC with 100 calls in flight, the built
 * server (`node dist/src/main.js`, pinned to core 0) with KEYPOOL_STATE=memory beside the same
 * server with a SQLite state file (WAL, synchronous=FULL, group commit), in one run, rounds
 * alternating. Each durable call is answered only after its commit, so this is the price of
 * "an acknowledged IncrementUsage survives kill -9". Target: durable >= 0.7 of in-memory.
 *
 * Load: 4 h2load processes on the load core, each one HTTP/2 connection with 25 streams, each on
 * its own key (so a commit writes several rows, as with a real pool). Every call is checked:
 * after a round, the pool's prompt counts must add up to the calls h2load saw succeed.
 *
 *   npm run build && npx tsx bench/durability.bench.ts [--quick]
 *   npm run bench -- --only=durability          (inside the whole suite)
 *
 * Not a test: figures depend on the machine. BENCHMARKS.md records them.
 */
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync } from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import {
  IncrementUsageRequestSchema,
  ListKeysRequestSchema,
  ListKeysResponseSchema,
} from "../gen/ts/keypool/v1/keypool_pb";
import { hashKey } from "../src/domain/key-hash";
import { coreLayout } from "./lib/children";
import { connect, unary } from "./lib/grpc-raw";
import { h2load } from "./lib/h2load";
import { benchKey } from "./lib/keys-file";
import { MAIN, startKeypool } from "./lib/keypool-server";

const INCREMENT_USAGE = "/keypool.v1.KeyPoolService/IncrementUsage";
const LIST_KEYS = "/keypool.v1.KeyPoolService/ListKeys";
const LOADERS = 4;
const STREAMS_PER_LOADER = 25; // 4 x 25 = 100 calls in flight
const TARGET_RATIO = 0.7;

export interface DurabilityRound {
  mode: "memory" | "sqlite";
  callsPerSec: number;
  calls: number;
  p50Ms: number;
  p99Ms: number;
  /** Server CPU time (all threads, user + system) per call: steadier than calls/s on a busy machine. */
  cpuMicrosPerCall: number;
  stateFileBytes?: number;
}

export interface DurabilityResult {
  rounds: DurabilityRound[];
  memoryCallsPerSec: number;
  sqliteCallsPerSec: number;
  ratio: number;
  memoryCpuMicrosPerCall: number;
  sqliteCpuMicrosPerCall: number;
  /** Calls each of the 4 loaders sends per round. */
  callsPerLoader: number;
  inFlight: number;
}

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
};

/** CPU time a process has used so far (user + system, every thread), in ms. */
function cpuMs(pid: number): number {
  // /proc/<pid>/stat: the command may contain spaces, so count fields after its closing paren.
  const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  const ticksPerSec = 100; // USER_HZ on Linux
  return ((Number(fields[11]) + Number(fields[12])) * 1000) / ticksPerSec;
}

/** Sum of prompt_count over the pool: every acknowledged IncrementUsage added exactly one. */
async function totalPrompts(port: number): Promise<number> {
  const session = await connect(port);
  try {
    const reply = await unary(session, LIST_KEYS, toBinary(ListKeysRequestSchema, create(ListKeysRequestSchema, {})));
    if (reply.grpcStatus !== 0) throw new Error(`ListKeys failed: grpc-status ${reply.grpcStatus} ${reply.grpcMessage}`);
    return fromBinary(ListKeysResponseSchema, reply.message).keys.reduce((sum, k) => sum + Number(k.promptCount), 0);
  } finally {
    session.destroy();
  }
}

async function round(mode: "memory" | "sqlite", callsPerLoader: number, dir: string, n: number): Promise<DurabilityRound> {
  const cores = coreLayout();
  const keys = Array.from({ length: LOADERS }, (_, i) => benchKey(i));
  const stateFile = path.join(dir, `round-${n}.db`);
  const server = await startKeypool({
    env: {
      OPENAI_KEY: keys.join(","),
      KEYPOOL_STATE: mode === "memory" ? "memory" : stateFile,
      KEYPOOL_LOG_LEVEL: "warn",
    },
    cpus: cores.server,
  });
  try {
    const cpuBefore = cpuMs(server.pid);
    const wallStart = performance.now();
    const results = await Promise.all(
      keys.map((key) => {
        const body = toBinary(
          IncrementUsageRequestSchema,
          create(IncrementUsageRequestSchema, {
            keyHash: hashKey("openai", key, ""),
            model: "gpt-3.5-turbo",
            inputTokens: 1200n,
            outputTokens: 300n,
          }),
        );
        return h2load(
          server.port,
          INCREMENT_USAGE,
          body,
          { requests: callsPerLoader, connections: 1, streamsPerConnection: STREAMS_PER_LOADER },
          cores.load,
        );
      }),
    );
    const wallS = (performance.now() - wallStart) / 1000;
    const cpuUsed = cpuMs(server.pid) - cpuBefore;
    const calls = results.reduce((sum, r) => sum + r.succeeded, 0);
    const prompts = await totalPrompts(server.port);
    // h2load sees HTTP 200 even for a gRPC error: the pool's counts prove every call succeeded.
    if (prompts < calls) throw new Error(`${mode}: h2load saw ${calls} calls succeed, but the pool counted ${prompts}`);
    return {
      mode,
      // All calls over the wall time of the whole round (the loaders run side by side).
      callsPerSec: calls / wallS,
      calls,
      p50Ms: median(results.map((r) => r.p50Ms)),
      p99Ms: Math.max(...results.map((r) => r.p99Ms)),
      cpuMicrosPerCall: (cpuUsed * 1000) / calls,
      ...(mode === "sqlite" && existsSync(stateFile) ? { stateFileBytes: statSync(stateFile).size } : {}),
    };
  } finally {
    await server.stop();
  }
}

/** For bench/run.ts: rows of the suite's table. */
export async function run(options: { quick: boolean; log: (line: string) => void }) {
  const result = await measureDurability(options);
  return [
    { name: "IncrementUsage/s, KEYPOOL_STATE=memory (100 in flight)", value: result.memoryCallsPerSec.toFixed(0) },
    { name: "IncrementUsage/s, SQLite state file (100 in flight)", value: result.sqliteCallsPerSec.toFixed(0) },
    {
      name: "server CPU per IncrementUsage, memory / SQLite",
      value: `${result.memoryCpuMicrosPerCall.toFixed(0)} µs / ${result.sqliteCpuMicrosPerCall.toFixed(0)} µs`,
    },
    {
      name: "durable / in-memory",
      value: result.ratio.toFixed(2),
      target: `>= ${TARGET_RATIO}`,
      met: result.ratio >= TARGET_RATIO,
    },
  ];
}

export async function measureDurability(options: { quick: boolean; log: (line: string) => void }): Promise<DurabilityResult> {
  if (!existsSync(MAIN)) throw new Error(`${MAIN} is missing: run 'npm run build' first`);
  // A request count, not h2load -D: its timed mode sometimes ends without printing its figures.
  const callsPerLoader = options.quick ? 500 : 2500;
  const rounds = options.quick ? 1 : 5;
  const dir = mkdtempSync(path.join(os.tmpdir(), "keypool-bench-durability-"));
  const all: DurabilityRound[] = [];
  try {
    for (let i = 0; i < rounds; i++) {
      // Alternate which goes first, so that drift on the machine hits both alike.
      const order: Array<"memory" | "sqlite"> = i % 2 ? ["sqlite", "memory"] : ["memory", "sqlite"];
      for (const mode of order) {
        const r = await round(mode, callsPerLoader, dir, all.length);
        all.push(r);
        options.log(
          `  durability round ${i + 1} ${mode}: ${r.callsPerSec.toFixed(0)} calls/s (${r.calls} calls, p50 ${r.p50Ms.toFixed(2)} ms, p99 ${r.p99Ms.toFixed(2)} ms, server CPU ${r.cpuMicrosPerCall.toFixed(0)} µs/call)`,
        );
      }
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  const memoryCallsPerSec = median(all.filter((r) => r.mode === "memory").map((r) => r.callsPerSec));
  const sqliteCallsPerSec = median(all.filter((r) => r.mode === "sqlite").map((r) => r.callsPerSec));
  const memoryCpuMicrosPerCall = median(all.filter((r) => r.mode === "memory").map((r) => r.cpuMicrosPerCall));
  const sqliteCpuMicrosPerCall = median(all.filter((r) => r.mode === "sqlite").map((r) => r.cpuMicrosPerCall));
  return {
    rounds: all,
    memoryCallsPerSec,
    sqliteCallsPerSec,
    memoryCpuMicrosPerCall,
    sqliteCpuMicrosPerCall,
    ratio: sqliteCallsPerSec / memoryCallsPerSec,
    callsPerLoader,
    inFlight: LOADERS * STREAMS_PER_LOADER,
  };
}

if (require.main === module) {
  const quick = process.argv.includes("--quick");
  measureDurability({ quick, log: (line) => process.stderr.write(line + "\n") })
    .then((r) => {
      process.stdout.write(
        `IncrementUsage over gRPC, ${r.inFlight} in flight, ${r.callsPerLoader * LOADERS} calls per round, median of ${r.rounds.length / 2} round(s):\n` +
          `  memory: ${r.memoryCallsPerSec.toFixed(0)} calls/s\n` +
          `  sqlite: ${r.sqliteCallsPerSec.toFixed(0)} calls/s\n` +
          `  durable / in-memory: ${r.ratio.toFixed(2)} (target >= ${TARGET_RATIO})\n` +
          `  server CPU per call: memory ${r.memoryCpuMicrosPerCall.toFixed(0)} µs, sqlite ${r.sqliteCpuMicrosPerCall.toFixed(0)} µs\n`,
      );
      process.exit(0);
    })
    .catch((err: unknown) => {
      process.stderr.write(`${err instanceof Error ? err.stack : String(err)}\n`);
      process.exit(1);
    });
}
