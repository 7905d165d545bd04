/**
 * The pool kept in Redis (KEYPOOL_STATE=redis://..., docs/replicas.md), measured beside the
 * embedded SQLite pool in the same run:
 *
 * 1. Redis commands per RPC, from Redis's own `INFO commandstats` (reset before, read after a
 *    known number of calls through one replica, one after another): the round trips on the
 *    call's path (the script, by SHA), what the replica sends beside it (the change stream's
 *    XREAD), and the commands the script runs inside Redis (commandstats counts those too).
 *    Target: one round trip on the path of each Lease, ReportRateLimit and IncrementUsage.
 * 2. Lease throughput and p50/p99 with h2load (4 connections x 16 streams, 10 keys, reuse delay
 *    0): one replica on Redis (appendonly yes, appendfsync always) beside one keypool on a SQLite
 *    file, rounds alternating. keypool on core 0; Redis and h2load on the other core.
 * 3. Start time of a replica joining a Redis that already holds 100,000 keys: spawn to SERVING,
 *    with the same 100,000 configured keys (each merged in: already there) and with none.
 *    Target: < 2 s.
 *
 *   npm run build && npx tsx bench/replicas.bench.ts [--quick] [--join-only] [--rounds=N] [--baseline=<dir>[,<dir>...]]
 *
 * `--baseline` measures the start of other builds (each directory holding a build's dist/) in
 * the same rounds as this one's; `--join-only` measures only the starts; `--rounds` sets how
 * many rounds of joins (default 3). Beside each start's wall time, the CPU time the replica had
 * used by then: on a shared machine, the figure that other processes disturb least.
 *   npm run bench -- --only=replicas          (inside the whole suite)
 *
 * Not a test: figures depend on the machine. BENCHMARKS.md records them.
 */
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import Redis from "ioredis";
import {
  IncrementUsageRequestSchema,
  LeaseRequestSchema,
  LeaseResponseSchema,
  ListKeysRequestSchema,
  ListKeysResponseSchema,
  ReportRateLimitRequestSchema,
} from "../gen/ts/keypool/v1/keypool_pb";
import { startRedisServer, type RedisServer } from "../test/support/redis-server";
import { coreLayout } from "./lib/children";
import { connect, unary } from "./lib/grpc-raw";
import { h2load } from "./lib/h2load";
import { benchKey, writeKeysFile } from "./lib/keys-file";
import { MAIN, startKeypool, type ServerHandle } from "./lib/keypool-server";

const LEASE = "/keypool.v1.KeyPoolService/Lease";
const REPORT = "/keypool.v1.KeyPoolService/ReportRateLimit";
const USAGE = "/keypool.v1.KeyPoolService/IncrementUsage";
const LIST_KEYS = "/keypool.v1.KeyPoolService/ListKeys";
const MODEL = "gpt-3.5-turbo";
const START_TARGET_MS = 2000;

export interface CommandsPerCall {
  rpc: string;
  calls: number;
  /** Scripts (EVALSHA, EVAL) per call: the round trips on the call's path. */
  scriptsPerCall: number;
  /** Other commands replicas sent per call (the change stream's XREAD, read once per batch of changes). */
  besidePerCall: Record<string, number>;
  /** Commands the scripts ran inside Redis per call (no round trip each; their cost is Redis's CPU). */
  insidePerCall: Record<string, number>;
}

/** Commands a replica sends itself; INFO commandstats counts the scripts' own commands too. */
const SENT_BY_REPLICAS = new Set(["evalsha", "eval", "xread", "ping", "select", "auth", "hello", "client|setname", "client|setinfo", "script|load"]);

export interface LeaseRound {
  mode: "redis" | "sqlite";
  rps: number;
  p50Ms: number;
  p99Ms: number;
  succeeded: number;
}

export interface ReplicasResult {
  commands: CommandsPerCall[];
  rounds: LeaseRound[];
  redisLeaseRps: number;
  sqliteLeaseRps: number;
  redisP50Ms: number;
  redisP99Ms: number;
  sqliteP50Ms: number;
  sqliteP99Ms: number;
  /** Spawn to SERVING on a Redis holding 100,000 keys: with them configured, with none; and of a one-key pool. */
  joinMs: JoinTimes & { oneKeyPool: number };
  /** Spawn to SERVING of the replica that filled the empty Redis with 100,000 keys. */
  fillMs: number;
  /** The same joins by the baseline builds, measured in the same rounds. */
  baselineJoinMs: { label: string; joinMs: JoinTimes }[];
}

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
};

/** INFO commandstats as { command: calls }. */
async function commandCalls(admin: Redis): Promise<Record<string, number>> {
  const text = await admin.info("commandstats");
  const calls: Record<string, number> = {};
  for (const match of text.matchAll(/^cmdstat_([^:]+):calls=(\d+)/gm)) calls[match[1]!] = Number(match[2]);
  return calls;
}

async function grpc(port: number, method: string, body: Uint8Array): Promise<Uint8Array> {
  const session = await connect(port);
  try {
    const reply = await unary(session, method, body);
    if (reply.grpcStatus !== 0) throw new Error(`${method}: grpc-status ${reply.grpcStatus} ${reply.grpcMessage}`);
    return reply.message;
  } finally {
    session.destroy();
  }
}

/** Runs `calls` calls of one RPC through the replica, one after another, and counts Redis's commands. */
async function countCommands(
  rpc: string,
  calls: number,
  server: ServerHandle,
  admin: Redis,
  body: () => Uint8Array,
  method: string,
): Promise<CommandsPerCall> {
  const session = await connect(server.port);
  try {
    // Let the replica's follower settle on what came before, then count from zero.
    await new Promise((resolve) => setTimeout(resolve, 200));
    await admin.config("RESETSTAT");
    for (let i = 0; i < calls; i++) {
      const reply = await unary(session, method, body());
      if (reply.grpcStatus !== 0) throw new Error(`${rpc}: grpc-status ${reply.grpcStatus} ${reply.grpcMessage}`);
    }
    // The follower reads the last changes after the answers went out.
    await new Promise((resolve) => setTimeout(resolve, 200));
  } finally {
    session.destroy();
  }
  const counted = await commandCalls(admin);
  const per = (entries: [string, number][]) => Object.fromEntries(entries.map(([name, n]) => [name, Number((n / calls).toFixed(3))]));
  // The bench's own INFO and CONFIG RESETSTAT are not the replica's.
  const entries = Object.entries(counted).filter(([name]) => !name.startsWith("info") && !name.startsWith("config"));
  return {
    rpc,
    calls,
    scriptsPerCall: ((counted.evalsha ?? 0) + (counted.eval ?? 0)) / calls,
    besidePerCall: per(entries.filter(([name]) => SENT_BY_REPLICAS.has(name) && name !== "evalsha" && name !== "eval")),
    insidePerCall: per(entries.filter(([name]) => !SENT_BY_REPLICAS.has(name))),
  };
}

async function measureCommands(redis: RedisServer, admin: Redis, quick: boolean): Promise<CommandsPerCall[]> {
  const keys = Array.from({ length: 10 }, (_, i) => benchKey(i));
  const server = await startKeypool({ env: { KEYPOOL_STATE: redis.url, OPENAI_KEY: keys.join(","), KEYPOOL_REUSE_DELAY: "0", KEYPOOL_CHECK_KEYS: "false" }, cpus: undefined });
  try {
    const calls = quick ? 200 : 1000;
    const leaseBody = toBinary(LeaseRequestSchema, create(LeaseRequestSchema, { model: MODEL }));
    // A lease to report on: its key and lease id.
    const lease = fromBinary(LeaseResponseSchema, await grpc(server.port, LEASE, leaseBody));
    const out: CommandsPerCall[] = [];
    out.push(await countCommands("Lease", calls, server, admin, () => leaseBody, LEASE));
    const reportBody = toBinary(
      ReportRateLimitRequestSchema,
      create(ReportRateLimitRequestSchema, { keyHash: lease.keyHash, statusCode: 200, headers: { "x-ratelimit-remaining-requests": "100", "x-ratelimit-reset-requests": "1s" } }),
    );
    out.push(await countCommands("ReportRateLimit", calls, server, admin, () => reportBody, REPORT));
    const usageBody = toBinary(IncrementUsageRequestSchema, create(IncrementUsageRequestSchema, { keyHash: lease.keyHash, model: MODEL, inputTokens: 1200n, outputTokens: 300n }));
    out.push(await countCommands("IncrementUsage", calls, server, admin, () => usageBody, USAGE));
    return out;
  } finally {
    await server.stop();
  }
}

async function leaseRound(mode: "redis" | "sqlite", redis: RedisServer, dir: string, n: number, quick: boolean): Promise<LeaseRound> {
  const cores = coreLayout();
  const keys = Array.from({ length: 10 }, (_, i) => benchKey(i));
  const server = await startKeypool({
    env: {
      OPENAI_KEY: keys.join(","),
      KEYPOOL_STATE: mode === "redis" ? redis.url : path.join(dir, `lease-${n}.db`),
      KEYPOOL_REDIS_PREFIX: `lease-round-${n}`,
      KEYPOOL_REUSE_DELAY: "0",
      KEYPOOL_CHECK_KEYS: "false",
    },
    cpus: cores.server,
  });
  try {
    const body = toBinary(LeaseRequestSchema, create(LeaseRequestSchema, { model: MODEL }));
    const result = await h2load(server.port, LEASE, body, { requests: quick ? 3000 : 20_000, connections: 4, streamsPerConnection: 16 }, cores.load);
    // h2load sees HTTP 200 even for a gRPC error: the pool's lease counts prove the successes.
    const listed = fromBinary(ListKeysResponseSchema, await grpc(server.port, LIST_KEYS, toBinary(ListKeysRequestSchema, create(ListKeysRequestSchema, {}))));
    const leased = listed.keys.reduce((sum, k) => sum + Number(k.leaseCount), 0);
    if (leased < result.succeeded) throw new Error(`${mode}: h2load saw ${result.succeeded} Leases succeed, the pool counted ${leased}`);
    return { mode, rps: result.rps, p50Ms: result.p50Ms, p99Ms: result.p99Ms, succeeded: result.succeeded };
  } finally {
    await server.stop();
  }
}

/** A build whose replica start is measured: this one, or a baseline's dist/ (`--baseline=<dir>`). */
interface Build {
  label: string;
  main: string;
}

export interface JoinTimes {
  configured: number;
  none: number;
  /** CPU time the replica had used when it answered SERVING (medians, ms): less noisy than wall time on a shared machine. */
  configuredCpu: number;
  noneCpu: number;
}

async function measureJoin(
  redis: RedisServer,
  dir: string,
  builds: readonly Build[],
  rounds: number,
  log: (line: string) => void,
): Promise<{ fillMs: number; joinMs: JoinTimes & { oneKeyPool: number }; byBuild: { label: string; joinMs: JoinTimes }[] }> {
  const file = path.join(dir, "keys-100000.json");
  writeKeysFile(file, 100_000);
  const env = { KEYPOOL_STATE: redis.url, KEYPOOL_REDIS_PREFIX: "join", KEYPOOL_CHECK_KEYS: "false" };
  const first = await startKeypool({ env: { ...env, KEYPOOL_KEYS_FILE: file }, cpus: undefined, deadlineMs: 300_000 });
  log(`  replicas: the first replica filled an empty Redis with 100,000 keys in ${first.startMs.toFixed(0)} ms`);
  try {
    // Every build joins the same pool in every round, the order turning each round, so that a
    // loaded machine's noise falls on each build alike; the medians are compared.
    const times = builds.map(() => ({ configured: [] as number[], none: [] as number[], configuredCpu: [] as number[], noneCpu: [] as number[] }));
    for (let round = 0; round < rounds; round++) {
      const order = builds.map((_, i) => i);
      if (round % 2) order.reverse();
      for (const i of order) {
        const configured = await startKeypool({ env: { ...env, KEYPOOL_KEYS_FILE: file }, cpus: undefined, main: builds[i]!.main });
        await configured.stop();
        const none = await startKeypool({ env, cpus: undefined, main: builds[i]!.main });
        await none.stop();
        times[i]!.configured.push(configured.startMs);
        times[i]!.none.push(none.startMs);
        times[i]!.configuredCpu.push(configured.startCpuMs);
        times[i]!.noneCpu.push(none.startCpuMs);
        log(
          `  replicas: round ${round + 1}, ${builds[i]!.label}: joining 100,000 keys ${configured.startMs.toFixed(0)} ms (CPU ${configured.startCpuMs} ms) with them configured, ${none.startMs.toFixed(0)} ms (CPU ${none.startCpuMs} ms) with none`,
        );
      }
    }
    const byBuild = builds.map((b, i) => ({
      label: b.label,
      joinMs: { configured: median(times[i]!.configured), none: median(times[i]!.none), configuredCpu: median(times[i]!.configuredCpu), noneCpu: median(times[i]!.noneCpu) },
    }));
    // The floor: a replica whose pool holds one key (node's own start, the connection, the checks).
    const oneKeyPool = await startKeypool({ env: { ...env, KEYPOOL_REDIS_PREFIX: "join-one", OPENAI_KEY: benchKey(0) }, cpus: undefined });
    await oneKeyPool.stop();
    return { fillMs: first.startMs, joinMs: { ...byBuild[0]!.joinMs, oneKeyPool: oneKeyPool.startMs }, byBuild };
  } finally {
    await first.stop();
  }
}

export interface ReplicasOptions {
  quick: boolean;
  log: (line: string) => void;
  /** Builds whose replica start is measured beside this one's: directories holding a dist/. */
  baselines?: readonly string[];
  /** Only the start of a joining replica (no command counts, no Lease rounds). */
  joinOnly?: boolean;
  /** Rounds of joins (`--rounds=N`); default 3 (1 with --quick). */
  joinRounds?: number;
}

export async function measureReplicas(options: ReplicasOptions): Promise<ReplicasResult> {
  if (!existsSync(MAIN)) throw new Error(`${MAIN} is missing: run 'npm run build' first`);
  // Redis is not pinned: it shares the load core(s) with h2load, keypool has core 0 to itself.
  const redis = await startRedisServer({ appendfsync: "always" });
  const admin = new Redis({ host: "127.0.0.1", port: redis.port, lazyConnect: true });
  await admin.connect();
  const dir = mkdtempSync(path.join(os.tmpdir(), "keypool-bench-replicas-"));
  try {
    const commands = options.joinOnly ? [] : await measureCommands(redis, admin, options.quick);
    for (const c of commands) {
      options.log(`  replicas: ${c.rpc}: ${c.scriptsPerCall.toFixed(2)} script(s) per call; beside it ${JSON.stringify(c.besidePerCall)}; inside the script ${JSON.stringify(c.insidePerCall)}`);
    }
    const rounds: LeaseRound[] = [];
    const count = options.joinOnly ? 0 : options.quick ? 1 : 3;
    for (let i = 0; i < count; i++) {
      for (const mode of (i % 2 ? ["sqlite", "redis"] : ["redis", "sqlite"]) as ("redis" | "sqlite")[]) {
        const r = await leaseRound(mode, redis, dir, rounds.length, options.quick);
        rounds.push(r);
        options.log(`  replicas: Lease round ${i + 1} ${mode}: ${r.rps.toFixed(0)}/s, p50 ${r.p50Ms.toFixed(2)} ms, p99 ${r.p99Ms.toFixed(2)} ms`);
      }
    }
    const builds: Build[] = [{ label: "this build", main: MAIN }, ...(options.baselines ?? []).map((d) => ({ label: d, main: path.join(d, "dist", "src", "main.js") }))];
    const join = await measureJoin(redis, dir, builds, options.joinRounds ?? (options.quick ? 1 : 3), options.log);
    options.log(
      `  replicas: a replica joining 100,000 keys: ${join.joinMs.configured.toFixed(0)} ms with them configured, ${join.joinMs.none.toFixed(0)} ms with none; joining a pool of one key: ${join.joinMs.oneKeyPool.toFixed(0)} ms`,
    );
    const of = (mode: "redis" | "sqlite", field: "rps" | "p50Ms" | "p99Ms") => median(rounds.filter((r) => r.mode === mode).map((r) => r[field]));
    return {
      commands,
      rounds,
      redisLeaseRps: of("redis", "rps"),
      sqliteLeaseRps: of("sqlite", "rps"),
      redisP50Ms: of("redis", "p50Ms"),
      redisP99Ms: of("redis", "p99Ms"),
      sqliteP50Ms: of("sqlite", "p50Ms"),
      sqliteP99Ms: of("sqlite", "p99Ms"),
      fillMs: join.fillMs,
      joinMs: join.joinMs,
      baselineJoinMs: join.byBuild.slice(1),
    };
  } finally {
    admin.disconnect();
    await redis.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

interface Row {
  name: string;
  value: string;
  target?: string;
  met?: boolean;
}

/** For bench/run.ts: rows of the suite's table. */
export async function run(options: ReplicasOptions): Promise<Row[]> {
  const r = await measureReplicas(options);
  return [
    ...r.commands.map((c) => ({ name: `Redis scripts per ${c.rpc} (INFO commandstats)`, value: c.scriptsPerCall.toFixed(2), target: "1", met: Math.abs(c.scriptsPerCall - 1) < 0.01 })),
    ...r.commands.map((c) => ({ name: `other commands per ${c.rpc} (the change stream's reads)`, value: Object.entries(c.besidePerCall).map(([n, v]) => `${n} ${v}`).join(", ") || "none" })),
    ...r.commands.map((c) => ({ name: `commands inside the ${c.rpc} script`, value: Object.entries(c.insidePerCall).map(([n, v]) => `${n} ${v}`).join(", ") })),
    ...(r.rounds.length === 0
      ? []
      : [
          { name: "Lease/s, one replica on Redis (appendfsync always)", value: r.redisLeaseRps.toFixed(0) },
          { name: "Lease/s, SQLite state file", value: r.sqliteLeaseRps.toFixed(0) },
          { name: "Lease Redis / SQLite", value: (r.redisLeaseRps / r.sqliteLeaseRps).toFixed(2) },
          { name: "Lease p50 / p99, Redis", value: `${r.redisP50Ms.toFixed(2)} / ${r.redisP99Ms.toFixed(2)} ms` },
          { name: "Lease p50 / p99, SQLite", value: `${r.sqliteP50Ms.toFixed(2)} / ${r.sqliteP99Ms.toFixed(2)} ms` },
        ]),
    { name: "start of the replica filling an empty Redis with 100,000 keys", value: `${r.fillMs.toFixed(0)} ms` },
    { name: "start of a replica joining 100,000 keys (same keys configured)", value: `${r.joinMs.configured.toFixed(0)} ms (CPU ${r.joinMs.configuredCpu} ms)`, target: `< ${START_TARGET_MS} ms`, met: r.joinMs.configured < START_TARGET_MS },
    { name: "start of a replica joining 100,000 keys (no keys configured)", value: `${r.joinMs.none.toFixed(0)} ms (CPU ${r.joinMs.noneCpu} ms)`, target: `< ${START_TARGET_MS} ms`, met: r.joinMs.none < START_TARGET_MS },
    { name: "start of a replica joining a pool of one key (the floor)", value: `${r.joinMs.oneKeyPool.toFixed(0)} ms` },
    ...r.baselineJoinMs.flatMap((b) => [
      { name: `start of a replica joining 100,000 keys (same keys configured), ${b.label}`, value: `${b.joinMs.configured.toFixed(0)} ms (CPU ${b.joinMs.configuredCpu} ms); this build / it ${(r.joinMs.configured / b.joinMs.configured).toFixed(2)} (CPU ${(r.joinMs.configuredCpu / b.joinMs.configuredCpu).toFixed(2)})` },
      { name: `start of a replica joining 100,000 keys (no keys configured), ${b.label}`, value: `${b.joinMs.none.toFixed(0)} ms (CPU ${b.joinMs.noneCpu} ms); this build / it ${(r.joinMs.none / b.joinMs.none).toFixed(2)} (CPU ${(r.joinMs.noneCpu / b.joinMs.noneCpu).toFixed(2)})` },
    ]),
  ];
}

if (require.main === module) {
  const quick = process.argv.includes("--quick");
  const joinOnly = process.argv.includes("--join-only");
  const baselines = (process.argv.find((a) => a.startsWith("--baseline="))?.slice("--baseline=".length) ?? "").split(",").filter(Boolean);
  const rounds = process.argv.find((a) => a.startsWith("--rounds="))?.slice("--rounds=".length);
  run({ quick, joinOnly, baselines, joinRounds: rounds ? Number(rounds) : undefined, log: (line) => process.stderr.write(line + "\n") })
    .then((rows) => {
      for (const row of rows) process.stdout.write(`${row.name}: ${row.value}${row.target ? ` (target ${row.target}: ${row.met ? "met" : "NOT met"})` : ""}\n`);
      process.exit(0);
    })
    .catch((err) => {
      console.error(err);
      process.exit(1);
    });
}
