/**
 * The audience of the WatchKeys benchmark, run as a child process by bench/run.ts: `subscribers`
 * WatchKeys streams (raw HTTP/2, `connections` sessions), plus one stream decoded in full through
 * the Connect client to prove the messages are well formed and in order. While the parent drives
 * Lease load, it makes a change every `probeIntervalMs` (DisableKey of a marker key with the
 * reason `probe-N`; the key stays disabled, each probe is one change) and records, for every
 * subscriber, the time from just before the change was sent until the bytes carrying `probe-N`
 * (or a later probe that superseded it within one coalescing window) arrived on its stream.
 * Arrival is measured before protobuf decoding: decoding is the subscriber's own cost.
 * With `leaseRate`, the same process also drives the Lease load over raw HTTP/2 at that rate
 * (bench/lib/paced-lease.ts) from the end of the warm-up until the probes stop: one cheap process
 * on the load core instead of the subscribers and h2load competing for it. The Lease load starts
 * `leadMs` before the probes that count; the probes of that lead measure its onset.
 *
 * The subscribers may be split over several of these processes (bench/watch-fanout.ts,
 * `clientProcesses`): one of them (`drive`) sends the probes, drives the Lease load and runs the
 * verifier, the others only hold their share of the subscribers. So that arrivals in one process
 * can be set against sends in another, every time is read on the machine's monotonic clock
 * (process.hrtime), and the parent computes the latencies from the send and arrival times all
 * processes print.
 * Prints `READY` once every snapshot has arrived, waits for `GO` on stdin, and writes its report
 * (JSON) to `reportFile` when it has sent its last probe (the driver) or when `STOP` arrives on
 * stdin (the others).
 */
import { create, toBinary } from "@bufbuild/protobuf";
import { createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { KeyPoolService, KeyState, Provider, WatchKeysRequestSchema } from "../gen/ts/keypool/v1/keypool_pb";
import { connect, unary } from "./lib/grpc-raw";
import { grpcFrame } from "./lib/grpc-frame";
import { DISABLE_KEY, disableKeyBytes } from "./lib/keypool-rpc";
import { pacedLeases, type PacedLeaseResult } from "./lib/paced-lease";
import { writeFileSync } from "node:fs";
import { monitorEventLoopDelay } from "node:perf_hooks";

export interface FanoutConfig {
  port: number;
  subscribers: number;
  connections: number;
  markerKeyHash: string;
  warmupMs: number;
  durationMs: number;
  probeIntervalMs: number;
  /** WatchKeysRequest.batch: one KeyChanges message per coalescing window instead of one per change. */
  batch: boolean;
  /** Leases per second to send while probing (0: none). */
  leaseRate: number;
  /**
   * How long the Lease load runs before the probes that count (0: none). Its onset is when the
   * server first runs this mix of Leases and batched messages and V8 optimizes that code on the
   * server's one core: the probes sent in it are reported apart (`countedFrom`), not dropped.
   */
  leadMs: number;
  /** HTTP/2 sessions the Lease load uses. */
  leaseConnections: number;
  /** Whether this process sends the probes, drives the Lease load and runs the verifier. */
  drive: boolean;
  /** Where to write the report (JSON): a file, since it holds every arrival's time. */
  reportFile: string;
}

/** What one client process reports; the parent merges the processes' reports. */
export interface FanoutClientReport {
  subscribers: number;
  /** Per probe, when it was sent (ms on the monotonic clock; the driver's report only). */
  sentAt: number[];
  /** The first probe sent after the Lease load's lead (the driver's report only): the earlier ones measure the onset. */
  countedFrom: number;
  /** Per probe, the monotonic time of each of this process's subscribers' arrivals of it. */
  arrivals: number[][];
  /** Arrivals that came as a later probe's state, coalesced within one window. */
  superseded: number;
  bytesReceived: number;
  messages: number;
  messagesPerSec: number;
  streamErrors: number;
  firstStreamError: string;
  verifier?: { messages: number; outOfOrder: number; probesSeen: number; error: string };
  lease?: PacedLeaseResult;
  /** Share of one core this process used from GO to its end. */
  cpuShare: number;
  /** This process's event-loop delay from GO to its end: how late it can have read its sockets. */
  loopDelayP99Ms: number;
  loopDelayMaxMs: number;
}

/** The machine's monotonic clock in ms: the same in every process, unlike performance.now(). */
export const monotonicMs = (): number => Number(process.hrtime.bigint()) / 1e6;

/** Resolves when `line` arrives on stdin (the parent's go-ahead and stop). */
function stdinLine(line: string): Promise<void> {
  return new Promise((resolve) => {
    let got = "";
    const onData = (d: Buffer) => {
      got += d.toString("utf8");
      if (got.split("\n").includes(line)) {
        process.stdin.off("data", onData);
        process.stdin.pause();
        resolve();
      }
    };
    process.stdin.on("data", onData);
    // A 'data' listener does not restart a stream that was paused explicitly.
    process.stdin.resume();
  });
}

const WATCH = "/keypool.v1.KeyPoolService/WatchKeys";
const MARK = Buffer.from("probe-");
const DIGITS = 6;

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

async function main(config: FanoutConfig): Promise<void> {
  const sentAt: number[] = [];
  let countedFrom = 0;
  const arrivals: number[][] = [];
  let streamErrors = 0;
  let firstStreamError = "";
  let bytes = 0;
  let superseded = 0;
  /** gRPC messages received on the raw streams, counted from READY on. */
  let messages = 0;
  let counting = false;

  const sessions = await Promise.all(Array.from({ length: config.connections }, () => connect(config.port)));
  const request = grpcFrame(toBinary(WatchKeysRequestSchema, create(WatchKeysRequestSchema, { batch: config.batch })));
  let snapshots = 0;
  for (let i = 0; i < config.subscribers; i++) {
    const session = sessions[i % sessions.length];
    const stream = session.request({ ":method": "POST", ":path": WATCH, "content-type": "application/grpc", te: "trailers" });
    let seen = -1;
    let gotSnapshot = false;
    let tail: Buffer = Buffer.alloc(0);
    // gRPC framing: a 5-byte header (flag, length) before each message; headers may be split.
    let remaining = 0;
    let header: Buffer = Buffer.alloc(0);
    const countMessages = (chunk: Buffer) => {
      let i = 0;
      while (i < chunk.length) {
        if (remaining > 0) {
          const take = Math.min(remaining, chunk.length - i);
          remaining -= take;
          i += take;
          continue;
        }
        const part = chunk.subarray(i, i + 5 - header.length);
        header = header.length ? Buffer.concat([header, part]) : part;
        i += part.length;
        if (header.length === 5) {
          remaining = header.readUInt32BE(1);
          header = Buffer.alloc(0);
          if (counting) messages++;
        }
      }
    };
    stream.on("data", (chunk: Buffer) => {
      const now = monotonicMs();
      bytes += chunk.length;
      countMessages(chunk);
      if (!gotSnapshot) {
        gotSnapshot = true;
        snapshots++;
      }
      // The marker may straddle two chunks: the previous chunk's last bytes are searched joined
      // with this chunk's first ones (a small copy), then the chunk itself.
      const found = (hay: Buffer, from: number) => {
        let at = hay.indexOf(MARK, from);
        while (at !== -1 && at + MARK.length + DIGITS <= hay.length) {
          const n = Number(hay.toString("latin1", at + MARK.length, at + MARK.length + DIGITS));
          if (n > seen) {
            // Changes this subscriber has not seen yet, superseded by probe n within one coalescing
            // window, have reached it too (as their newer state): they count with their own send time.
            for (let m = seen + 1; m <= n; m++) {
              if (m < n) superseded++;
              (arrivals[m] ??= []).push(now);
            }
            seen = n;
          }
          at = hay.indexOf(MARK, at + 1);
        }
      };
      if (tail.length) found(Buffer.concat([tail, chunk.subarray(0, MARK.length + DIGITS)]), 0);
      found(chunk, 0);
      tail = Buffer.from(chunk.subarray(Math.max(0, chunk.length - (MARK.length + DIGITS - 1))));
    });
    stream.on("error", (e) => {
      streamErrors++;
      firstStreamError ||= String(e);
    });
    stream.on("trailers", (t) => {
      if (t["grpc-status"] !== "0") {
        streamErrors++;
        firstStreamError ||= `grpc-status ${t["grpc-status"]} ${t["grpc-message"] ?? ""}`;
      }
    });
    stream.end(request);
  }

  // One subscriber decoded in full: sequence strictly increasing, probe states as sent.
  const verifier = { messages: 0, outOfOrder: 0, probesSeen: 0, error: "" };
  const abort = new AbortController();
  const client = createClient(KeyPoolService, createGrpcTransport({ baseUrl: `http://127.0.0.1:${config.port}` }));
  const verifying = (async () => {
    if (!config.drive) return;
    let last = 0n;
    try {
      for await (const message of client.watchKeys({}, { signal: abort.signal })) {
        verifier.messages++;
        if (message.sequence <= last) verifier.outOfOrder++;
        last = message.sequence;
        const status = message.event.case === "updated" ? message.event.value : undefined;
        if (status && status.keyHash === config.markerKeyHash && status.state === KeyState.DISABLED && status.stateReason.startsWith("probe-")) {
          verifier.probesSeen++;
        }
        if (status && status.provider === Provider.UNSPECIFIED) verifier.error ||= "an update without a provider";
      }
    } catch (e) {
      if (!abort.signal.aborted) verifier.error = String(e);
    }
  })();

  const until = Date.now() + 60_000;
  while (snapshots < config.subscribers) {
    if (Date.now() > until) throw new Error(`only ${snapshots} of ${config.subscribers} snapshots arrived in 60 s (${firstStreamError})`);
    if (streamErrors > 0) throw new Error(`WatchKeys streams failed (${streamErrors}): ${firstStreamError}`);
    await sleep(20);
  }
  process.stdout.write("READY\n");
  await stdinLine("GO");
  counting = true;
  const countingSince = performance.now();
  const cpuSince = process.cpuUsage();
  const loopDelay = monitorEventLoopDelay({ resolution: 5 });
  loopDelay.enable();
  let lease: PacedLeaseResult | undefined;
  const leaseSessions: Awaited<ReturnType<typeof connect>>[] = [];
  let admin: Awaited<ReturnType<typeof connect>> | undefined;
  if (config.drive) {
    await sleep(config.warmupMs);
    admin = await connect(config.port);
    const leadMs = config.leaseRate > 0 ? config.leadMs : 0;
    const countFrom = performance.now() + leadMs;
    const stopAt = countFrom + config.durationMs;
    if (config.leaseRate > 0) leaseSessions.push(...(await Promise.all(Array.from({ length: config.leaseConnections }, () => connect(config.port)))));
    const leasing: Promise<PacedLeaseResult | undefined> = config.leaseRate > 0 ? pacedLeases(leaseSessions, config.leaseRate, leadMs + config.durationMs) : Promise.resolve(undefined);
    let probes = 0;
    while (performance.now() < stopAt) {
      if (performance.now() < countFrom) countedFrom = probes + 1;
      const n = probes++;
      const reason = `probe-${n.toString().padStart(DIGITS, "0")}`;
      sentAt[n] = monotonicMs();
      // Each probe disables the (already disabled) marker key with a new reason: one change.
      const disabled = await unary(admin, DISABLE_KEY, disableKeyBytes(config.markerKeyHash, reason));
      if (disabled.grpcStatus !== 0) throw new Error(`DisableKey failed: ${disabled.grpcStatus} ${disabled.grpcMessage}`);
      const wait = sentAt[n] + config.probeIntervalMs - monotonicMs();
      if (wait > 0) await sleep(wait);
    }
    lease = await leasing;
    // Let the last probe land everywhere.
    await sleep(Math.max(1000, config.probeIntervalMs));
  } else {
    await stdinLine("STOP");
  }
  const cpu = process.cpuUsage(cpuSince);
  loopDelay.disable();
  const countingMs = performance.now() - countingSince;
  counting = false;
  abort.abort();
  await verifying;

  const report: FanoutClientReport = {
    subscribers: config.subscribers,
    sentAt,
    countedFrom,
    arrivals,
    superseded,
    bytesReceived: bytes,
    messages,
    messagesPerSec: messages / (countingMs / 1000),
    streamErrors,
    firstStreamError,
    verifier: config.drive ? verifier : undefined,
    lease,
    cpuShare: (cpu.user + cpu.system) / 1000 / countingMs,
    loopDelayP99Ms: loopDelay.percentile(99) / 1e6,
    loopDelayMaxMs: loopDelay.max / 1e6,
  };
  writeFileSync(config.reportFile, JSON.stringify(report));
  admin?.destroy();
  for (const s of [...sessions, ...leaseSessions]) s.destroy();
  process.exit(0);
}

if (require.main === module) {
  main(JSON.parse(process.argv[2] ?? "{}") as FanoutConfig).catch((e) => {
    console.error(e);
    process.exit(1);
  });
}
