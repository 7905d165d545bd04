/**
 * Drives a gRPC unary method with h2load (Debian's nghttp2-client): the request body is a prepared
 * length-prefixed message, sent over HTTP/2 cleartext with prior knowledge, as gRPC clients do.
 * h2load only sees HTTP statuses; callers verify grpc-status separately (see grpc-verify.ts).
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { run } from "./children";
import { grpcFrame } from "./grpc-frame";
import { summarize } from "./stats";

export const H2LOAD = "/usr/bin/h2load";

export interface LoadShape {
  requests: number;
  connections: number;
  streamsPerConnection: number;
  /** Timed run instead of a request count (h2load -D), seconds. */
  durationS?: number;
  /** Open-loop rate per connection (h2load --rps). */
  rpsPerConnection?: number;
}

export interface LoadResult {
  tool: string;
  requests: number;
  succeeded: number;
  failed: number;
  http2xx: number;
  rps: number;
  p50Ms: number;
  p99Ms: number;
}

/** Runs h2load against http://127.0.0.1:port/<method> with `message` as the body of every request. */
export async function h2load(port: number, method: string, message: Uint8Array, shape: LoadShape, cpus: string | undefined): Promise<LoadResult> {
  const dir = mkdtempSync(path.join(os.tmpdir(), "keypool-h2load-"));
  try {
    const body = path.join(dir, "body.bin");
    const log = path.join(dir, "requests.log");
    writeFileSync(body, grpcFrame(message));
    const { stdout } = await run(
      H2LOAD,
      [
        ...(shape.durationS ? ["-D", String(shape.durationS)] : ["-n", String(shape.requests)]),
        ...(shape.rpsPerConnection ? ["--rps", String(shape.rpsPerConnection)] : []),
        "-c", String(shape.connections),
        "-m", String(shape.streamsPerConnection),
        "-t", "1",
        "-d", body,
        "-H", "content-type: application/grpc",
        "-H", "te: trailers",
        "--log-file", log,
        `http://127.0.0.1:${port}${method}`,
      ],
      cpus,
    );
    const finished = /finished in ([\d.]+)(m?s), ([\d.]+) req\/s/.exec(stdout);
    const requests = /requests: (\d+) total, (\d+) started, (\d+) done, (\d+) succeeded, (\d+) failed/.exec(stdout);
    const codes = /status codes: (\d+) 2xx/.exec(stdout);
    if (!finished || !requests || !codes) throw new Error(`cannot parse h2load output:\n${stdout}`);
    const durations: number[] = [];
    for (const line of readFileSync(log, "utf8").split("\n")) {
      const cols = line.split("\t");
      if (cols.length >= 3) durations.push(Number(cols[2]) / 1000);
    }
    const lat = summarize(durations);
    return {
      tool: "h2load",
      requests: Number(requests[1]),
      succeeded: Number(requests[4]),
      failed: Number(requests[5]) + (Number(requests[1]) - Number(requests[3])),
      http2xx: Number(codes[1]),
      rps: Number(finished[3]),
      p50Ms: lat.p50Ms,
      p99Ms: lat.p99Ms,
    };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
