/**
 * A Lease load at a fixed rate, cheap enough to share a core with 1,000 WatchKeys subscribers:
 * raw node:http2 streams over a few sessions, the request frame built once, no response decoding
 * (grpc-status from the trailers is all it reads). Every few milliseconds it sends the calls the
 * schedule says are due, so the rate holds whatever the timer jitter; at most `maxInFlight` calls
 * are outstanding, and a call the cap holds back is sent late, not dropped (the achieved rate
 * then falls below the asked one, which the result shows).
 */
import * as http2 from "node:http2";
import { grpcFrame } from "./grpc-frame";
import { LEASE, leaseRequestBytes } from "./keypool-rpc";
import { summarize } from "./stats";

export interface PacedLeaseResult {
  askedRate: number;
  sent: number;
  ok: number;
  failed: number;
  /** Calls completed per second over the run. */
  rps: number;
  p50Ms: number;
  p99Ms: number;
  firstError: string;
}

export async function pacedLeases(sessions: http2.ClientHttp2Session[], rate: number, durationMs: number, maxInFlight = 512): Promise<PacedLeaseResult> {
  const frame = grpcFrame(leaseRequestBytes());
  const latencies: number[] = [];
  let sent = 0;
  let ok = 0;
  let failed = 0;
  let inFlight = 0;
  let firstError = "";
  const t0 = performance.now();
  const stopAt = t0 + durationMs;
  const send = () => {
    const session = sessions[sent % sessions.length]!;
    sent++;
    inFlight++;
    const start = performance.now();
    const stream = session.request({ ":method": "POST", ":path": LEASE, "content-type": "application/grpc", te: "trailers" });
    let status: string | undefined;
    stream.on("response", (h) => (status = h["grpc-status"] as string | undefined));
    stream.on("trailers", (t) => (status = t["grpc-status"] as string | undefined));
    stream.on("error", (e) => (firstError ||= String(e)));
    stream.on("close", () => {
      inFlight--;
      if (status === "0") {
        ok++;
        latencies.push(performance.now() - start);
      } else {
        failed++;
        firstError ||= `grpc-status ${status}`;
      }
    });
    stream.resume();
    stream.end(frame);
  };
  for (;;) {
    const now = performance.now();
    if (now >= stopAt) break;
    const due = Math.floor(((now - t0) * rate) / 1000);
    while (sent < due && inFlight < maxInFlight) send();
    await new Promise<void>((resolve) => setTimeout(resolve, 2));
  }
  const endAt = performance.now();
  while (inFlight > 0 && performance.now() < endAt + 10_000) await new Promise<void>((resolve) => setTimeout(resolve, 5));
  const { p50Ms, p99Ms } = summarize(latencies);
  return { askedRate: rate, sent, ok, failed, rps: ok / ((endAt - t0) / 1000), p50Ms, p99Ms, firstError };
}
