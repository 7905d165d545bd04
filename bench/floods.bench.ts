/**
 * Floods: what a rapid-reset flood and a waiter flood cost the built server in memory and in
 * the latency of everyone else, each with its limit at the default beside the limit lifted, in
 * one run.
 *
 * - Rapid reset: FLOOD_CONNECTIONS HTTP/2 connections each write HEADERS, DATA and RST_STREAM
 *   for stream after stream of Lease, as fast as the socket takes them (bench/lib/rapid-reset.ts),
 *   reconnecting whenever the server closes them, for FLOOD_MS.
 *   Default: KEYPOOL_MAX_STREAM_RESETS=1000; lifted: 1,000,000 (only nghttp2's own burst limit
 *   is left).
 * - Waiters: WAITER_CONNECTIONS connections of WAITERS_PER_CONNECTION Lease calls with
 *   max_wait 60 s, on a pool whose only key is held (KEYPOOL_REUSE_DELAY=10m). Default:
 *   KEYPOOL_MAX_WAITERS_TOTAL=5000; lifted: 10,000,000 (and KEYPOOL_MAX_WAITERS likewise).
 *
 * Meanwhile one more connection calls Health/Check every 20 ms; its p50/p99 are reported beside
 * the same measurement on the idle server, and the server's peak RSS beside its idle RSS.
 *
 *   npm run build && npx tsx bench/floods.bench.ts [--quick]
 *
 * Not a test: figures depend on the machine. BENCHMARKS.md records them.
 */
import * as http2 from "node:http2";
import { create, toBinary } from "@bufbuild/protobuf";
import { HealthCheckRequestSchema } from "../gen/ts/grpc/health/v1/health_pb";
import { LeaseRequestSchema } from "../gen/ts/keypool/v1/keypool_pb";
import * as path from "node:path";
import { coreLayout, sleep, start, type Started } from "./lib/children";
import { grpcFrame } from "./lib/grpc-frame";
import { connect, unary } from "./lib/grpc-raw";
import { floodWithResets } from "../test/support/rapid-reset";
import { ROOT, startKeypool, type ServerHandle } from "./lib/keypool-server";
import { percentile } from "./lib/stats";

const LEASE = "/keypool.v1.KeyPoolService/Lease";
const CHECK = "/grpc.health.v1.Health/Check";
const checkRequest = toBinary(HealthCheckRequestSchema, create(HealthCheckRequestSchema, { service: "" }));

interface FloodResult {
  config: string;
  idleRssMiB: number;
  peakRssMiB: number;
  idleCheckP50Ms: number;
  idleCheckP99Ms: number;
  checkP50Ms: number;
  checkP99Ms: number;
  /** Rapid reset: streams opened and reset, and connections the server closed. Waiters: calls waiting at the peak, and refused ones. */
  detail: string;
}

/** Health/Check latencies every 20 ms on one connection until `until` resolves. */
async function probeChecks(port: number, until: Promise<unknown>): Promise<number[]> {
  const session = await connect(port);
  const latencies: number[] = [];
  let done = false;
  void until.then(() => (done = true));
  while (!done) {
    const t0 = performance.now();
    try {
      await unary(session, CHECK, checkRequest, 30_000);
      latencies.push(performance.now() - t0);
    } catch {
      latencies.push(30_000);
    }
    await sleep(20);
  }
  session.destroy();
  return latencies;
}

async function idleFigures(server: ServerHandle): Promise<{ rss: number; p50: number; p99: number }> {
  await sleep(500);
  const rss = server.rssMiB();
  const checks = await probeChecks(server.port, sleep(2000));
  return { rss, p50: percentile(checks, 0.5), p99: percentile(checks, 0.99) };
}

/** Samples RSS every 100 ms until `until` resolves; the peak. */
async function peakRss(server: ServerHandle, until: Promise<unknown>): Promise<number> {
  let peak = 0;
  let done = false;
  void until.then(() => (done = true));
  while (!done) {
    peak = Math.max(peak, server.rssMiB());
    await sleep(100);
  }
  return peak;
}

async function rapidReset(maxStreamResets: number, floodMs: number, connections: number, cpus: string | undefined, loadCpus: string | undefined): Promise<FloodResult> {
  const server = await startKeypool({
    env: { KEYPOOL_STATE: "memory", KEYPOOL_MAX_STREAM_RESETS: String(maxStreamResets), OPENAI_KEY: "sk-flood-bench-0001" },
    cpus,
  });
  try {
    const idle = await idleFigures(server);
    const config = maxStreamResets >= 1_000_000 ? "lifted (1,000,000)" : `default (${maxStreamResets})`;
    return await measureFlood(server, idle, config, ["reset", String(server.port), String(floodMs), String(connections)], loadCpus);
  } finally {
    await server.stop();
  }
}

/** Runs one flood against the server and reads its RSS peak and Health/Check latencies meanwhile. */
async function measureFlood(
  server: Parameters<typeof idleFigures>[0],
  idle: Awaited<ReturnType<typeof idleFigures>>,
  config: string,
  args: string[],
  loadCpus: string | undefined,
): Promise<FloodResult> {
  const flood = floodFrom(args, loadCpus);
  const [checks, peak] = await Promise.all([probeChecks(server.port, flood.exited), peakRss(server, flood.exited)]);
  return {
    config,
    idleRssMiB: idle.rss,
    peakRssMiB: peak,
    idleCheckP50Ms: idle.p50,
    idleCheckP99Ms: idle.p99,
    checkP50Ms: percentile(checks, 0.5),
    checkP99Ms: percentile(checks, 0.99),
    detail: flood.stdout().trim(),
  };
}

async function waiterFlood(
  maxWaiters: number,
  connections: number,
  perConnection: number,
  holdMs: number,
  cpus: string | undefined,
  loadCpus: string | undefined,
): Promise<FloodResult> {
  const server = await startKeypool({
    env: {
      KEYPOOL_STATE: "memory",
      KEYPOOL_MAX_WAITERS_TOTAL: String(maxWaiters),
      KEYPOOL_MAX_WAITERS: String(Math.max(maxWaiters, 10_000)),
      KEYPOOL_MAX_CONCURRENT_STREAMS: String(perConnection + 10),
      KEYPOOL_REUSE_DELAY: "10m",
      OPENAI_KEY: "sk-flood-bench-0001",
    },
    cpus,
  });
  const sessions: http2.ClientHttp2Session[] = [];
  try {
    const idle = await idleFigures(server);
    // The one key is now held for 10 minutes: every Lease with max_wait waits.
    const first = await connect(server.port);
    sessions.push(first);
    await unary(first, LEASE, toBinary(LeaseRequestSchema, create(LeaseRequestSchema, { model: "gpt-4" })));
    const config = maxWaiters >= 1_000_000 ? "lifted (10,000,000)" : `default (${maxWaiters})`;
    const args = ["waiters", String(server.port), String(holdMs), String(connections), String(perConnection)];
    return await measureFlood(server, idle, config, args, loadCpus);
  } finally {
    for (const s of sessions) s.destroy();
    await server.stop();
  }
}

function table(title: string, rows: FloodResult[]): string {
  const f = (n: number) => n.toFixed(1);
  return [
    `### ${title}`,
    "",
    "| limit | RSS idle → peak (MiB) | Health/Check p50 / p99 idle (ms) | p50 / p99 during the flood (ms) | what happened |",
    "|---|---|---|---|---|",
    ...rows.map(
      (r) =>
        `| ${r.config} | ${f(r.idleRssMiB)} → ${f(r.peakRssMiB)} | ${f(r.idleCheckP50Ms)} / ${f(r.idleCheckP99Ms)} | ${f(r.checkP50Ms)} / ${f(r.checkP99Ms)} | ${r.detail} |`,
    ),
    "",
  ].join("\n");
}

export async function run({ quick, log }: { quick: boolean; log: (s: string) => void }): Promise<FloodResult[]> {
  const cores = coreLayout();
  const floodMs = quick ? 3000 : 10_000;
  log(`floods: ${cores.note}; rapid reset for ${floodMs} ms per configuration`);
  const resets = [
    await rapidReset(1000, floodMs, 4, cores.server, cores.load),
    await rapidReset(1_000_000, floodMs, 4, cores.server, cores.load),
  ];
  log(table("Rapid reset (4 connections resetting Lease streams as fast as they can)", resets));
  const waiters = [
    await waiterFlood(5000, 12, 1000, quick ? 8000 : 20_000, cores.server, cores.load),
    await waiterFlood(10_000_000, 12, 1000, quick ? 8000 : 20_000, cores.server, cores.load),
  ];
  log(table("Waiters (12 connections x 1,000 Leases with max_wait 60 s, one key, held)", waiters));
  return [...resets, ...waiters];
}

/** This file again, as the flood's own process on the load core (the probe must not share its event loop). */
function floodFrom(args: string[], cpus: string | undefined): Started {
  return start(process.execPath, ["--import", "tsx", path.join(ROOT, "bench", "floods.bench.ts"), "--flood", ...args], cpus, { cwd: ROOT });
}

/** Rapid reset: `connections` loops of open-and-reset at the frame level, reconnecting when the server closes them. */
async function resetFlood(port: number, floodMs: number, connections: number): Promise<string> {
  const lease = grpcFrame(toBinary(LeaseRequestSchema, create(LeaseRequestSchema, { model: "gpt-4" })));
  let resets = 0;
  let connectionsOpened = 0;
  const goaways = new Map<number, number>();
  const started = Date.now();
  const deadline = started + floodMs;
  const flooder = async () => {
    while (Date.now() < deadline) {
      connectionsOpened++;
      const result = await floodWithResets(port, LEASE, lease, deadline);
      resets += result.resets;
      if (result.goawayCode !== undefined) goaways.set(result.goawayCode, (goaways.get(result.goawayCode) ?? 0) + 1);
    }
  };
  await Promise.all(Array.from({ length: connections }, flooder));
  const perSecond = Math.round(resets / ((Date.now() - started) / 1000));
  const closed = [...goaways].map(([code, n]) => `${n} GOAWAY ${GOAWAY_NAMES[code] ?? code}`).join(", ") || "no GOAWAY";
  return `${resets} streams reset (${perSecond}/s) over ${connectionsOpened} connections; ${closed}`;
}

const GOAWAY_NAMES: Record<number, string> = { 0: "NO_ERROR", 1: "PROTOCOL_ERROR", 2: "INTERNAL_ERROR", 11: "ENHANCE_YOUR_CALM" };

/** Waiters: `connections` x `perConnection` Leases with max_wait 60 s, held for `holdMs`. */
async function waitersFlood(port: number, holdMs: number, connections: number, perConnection: number): Promise<string> {
  const waiting = grpcFrame(toBinary(LeaseRequestSchema, create(LeaseRequestSchema, { model: "gpt-4", maxWait: { seconds: 60n } })));
  let refused = 0;
  const sessions: http2.ClientHttp2Session[] = [];
  for (let c = 0; c < connections; c++) {
    const session = await connect(port);
    sessions.push(session);
    for (let i = 0; i < perConnection; i++) {
      const stream = session.request({ ":method": "POST", ":path": LEASE, "content-type": "application/grpc", te: "trailers" });
      stream.on("error", () => undefined);
      const count = (h: http2.IncomingHttpHeaders) => {
        if (h["grpc-status"] === "8") refused++;
      };
      stream.on("response", count);
      stream.on("trailers", count);
      stream.on("data", () => undefined);
      stream.end(waiting);
    }
  }
  await sleep(holdMs);
  for (const s of sessions) s.destroy();
  return `${connections * perConnection} Leases sent, ${refused} refused with RESOURCE_EXHAUSTED`;
}

if (process.argv[2] === "--flood") {
  const [kind, ...rest] = process.argv.slice(3);
  const n = rest.map(Number);
  const flood = kind === "reset" ? resetFlood(n[0]!, n[1]!, n[2]!) : waitersFlood(n[0]!, n[1]!, n[2]!, n[3]!);
  flood.then(
    (line) => {
      process.stdout.write(line + "\n");
      process.exit(0);
    },
    (err: unknown) => {
      process.stderr.write(String(err) + "\n");
      process.exit(1);
    },
  );
} else if (require.main === module) {
  run({ quick: process.argv.includes("--quick"), log: (s) => process.stdout.write(s + "\n") }).catch((err: unknown) => {
    process.stderr.write(`${err instanceof Error ? err.stack : String(err)}\n`);
    process.exit(1);
  });
}
