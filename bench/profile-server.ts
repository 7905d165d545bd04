/**
 * Where does a keypool server spend its time under one kind of load? Starts keypool with
 * `node --cpu-prof` on the server core, drives it with h2load (Lease or Health/Check) from the
 * other core, stops it, and prints the functions with the most self time. The .cpuprofile stays
 * in bench/results/ for Chrome DevTools or speedscope.
 *
 *   npx tsx bench/profile-server.ts --method=lease --keys=100000[@10] [--requests=50000] [--state=memory] [--port=native] [--warm=110000]
 *
 * `--warm=N` sends N calls first and reports only the samples of the calls after them: with N
 * above the key count, a Lease profile of keys that have all been leased before.
 * `--port=native` drives the native gRPC port (KEYPOOL_GRPC_PORT) instead of the main port;
 * `--port=noop` the grpc-js no-op server (bench/grpc-js-noop-server.ts), the native port's yardstick.
 */
import { mkdirSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { create, toBinary } from "@bufbuild/protobuf";
import { HealthCheckRequestSchema } from "../gen/ts/grpc/health/v1/health_pb";
import { coreLayout } from "./lib/children";
import { h2load } from "./lib/h2load";
import { CHECK, LEASE, leaseRequestBytes } from "./lib/keypool-rpc";
import { ROOT, startGrpcJsNoop, startKeypool } from "./lib/keypool-server";
import { leaseBenchEnv, poolOf, writeKeysFile } from "./lib/keys-file";

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
}
export interface Profile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
  startTime: number;
}

/**
 * The same profile reduced to the samples taken between `fromUs` and `toUs` (the profile's clock:
 * the monotonic clock in µs, as process.hrtime reads it), e.g. one phase of a benchmark.
 */
export function profileWindow(profile: Profile, fromUs: number, toUs: number): Profile {
  const samples: number[] = [];
  const timeDeltas: number[] = [];
  let at = profile.startTime;
  profile.samples.forEach((id, i) => {
    at += profile.timeDeltas[i] ?? 0;
    if (at < fromUs || at > toUs) return;
    samples.push(id);
    timeDeltas.push(profile.timeDeltas[i] ?? 0);
  });
  return { ...profile, samples, timeDeltas, startTime: fromUs };
}

type CallFrame = Profile["nodes"][number]["callFrame"];

/** Self time summed under the name each sample's frame gets, largest first. */
function selfTimeBy(profile: Profile, limit: number, nameOf: (frame: CallFrame) => string): { name: string; ms: number; share: number }[] {
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const self = new Map<string, number>();
  let total = 0;
  profile.samples.forEach((id, i) => {
    const dt = profile.timeDeltas[i] ?? 0;
    const name = nameOf(byId.get(id)!.callFrame);
    self.set(name, (self.get(name) ?? 0) + dt);
    total += dt;
  });
  return [...self]
    .sort((a, b) => b[1] - a[1])
    .slice(0, limit)
    .map(([name, us]) => ({ name, ms: us / 1000, share: us / total }));
}

/** Self time by package (grpc-js, node's http2, keypool's files, the collector...), largest first. */
export function selfTimeByPackage(profile: Profile, limit: number): { name: string; ms: number; share: number }[] {
  return selfTimeBy(profile, limit, ({ url, functionName }) => {
    if (!url) return functionName || "(native)";
    if (url.includes("node_modules/")) return url.replace(/.*node_modules\/((@[^/]+\/)?[^/]+).*/, "$1");
    if (url.startsWith("node:")) return url.split("/").slice(0, 3).join("/");
    return url.replace(/^file:\/\//, "").replace(ROOT + "/", "");
  });
}

/** Self time by function, largest first. */
export function topFunctions(profile: Profile, limit: number): { name: string; ms: number; share: number }[] {
  return selfTimeBy(profile, limit, (cf) => {
    const where = cf.url.replace(/.*node_modules\//, "").replace(/^file:\/\//, "").replace(ROOT + "/", "");
    return `${cf.functionName || "(anonymous)"} ${where}${where ? `:${cf.lineNumber + 1}` : ""}`;
  });
}

async function main(): Promise<void> {
  const arg = (name: string, fallback: string) => process.argv.find((a) => a.startsWith(`--${name}=`))?.slice(name.length + 3) ?? fallback;
  const method = arg("method", "lease");
  const pool = poolOf(arg("keys", "10"));
  const requests = Number(arg("requests", "50000"));
  const state = arg("state", "");
  const port = arg("port", "main");
  const warm = Number(arg("warm", "0"));
  const native = port === "native";
  const cores = coreLayout();
  const dir = path.join(ROOT, "bench", "results", `profile-${method}-${pool.label}-${Date.now()}`);
  mkdirSync(dir, { recursive: true });
  const keysFile = path.join(os.tmpdir(), `keypool-profile-keys-${pool.label}.json`);
  writeKeysFile(keysFile, pool.keys, { leasable: pool.leasable });
  const nodeArgs = ["--cpu-prof", `--cpu-prof-dir=${dir}`];
  const server =
    port === "noop"
      ? await startGrpcJsNoop(cores.server, nodeArgs)
      : await startKeypool({
          env: leaseBenchEnv(keysFile, state),
          cpus: cores.server,
          nodeArgs,
          nativePort: native,
        });
  const body = method === "lease" ? leaseRequestBytes() : toBinary(HealthCheckRequestSchema, create(HealthCheckRequestSchema, {}));
  const target = native ? server.grpcPort! : server.port;
  const shape = { connections: 4, streamsPerConnection: 16 };
  if (warm > 0) await h2load(target, method === "lease" ? LEASE : CHECK, body, { ...shape, requests: warm }, cores.load);
  // The profile's clock is the monotonic clock in µs, as this process's hrtime reads it.
  const fromUs = Number(process.hrtime.bigint() / 1000n);
  const r = await h2load(target, method === "lease" ? LEASE : CHECK, body, { ...shape, requests }, cores.load);
  const toUs = Number(process.hrtime.bigint() / 1000n);
  await server.stop();
  process.stdout.write(`${method}, ${pool.name}: ${Math.round(r.rps)}/s, p50 ${r.p50Ms.toFixed(2)} ms, p99 ${r.p99Ms.toFixed(2)} ms\n`);
  const file = readdirSync(dir).find((f) => f.endsWith(".cpuprofile"));
  if (!file) throw new Error(`no profile written in ${dir}`);
  const whole = JSON.parse(readFileSync(path.join(dir, file), "utf8")) as Profile;
  const top = topFunctions(warm > 0 ? profileWindow(whole, fromUs, toUs) : whole, 30);
  const text = top.map((t) => `${t.ms.toFixed(0).padStart(7)} ms ${(t.share * 100).toFixed(1).padStart(5)}%  ${t.name}`).join("\n");
  writeFileSync(path.join(dir, "top.txt"), text + "\n");
  process.stdout.write(text + `\nprofile: ${path.join(dir, file)}\n`);
}

if (require.main === module) {
  main().catch((e) => {
    console.error(e);
    process.exit(1);
  });
}
