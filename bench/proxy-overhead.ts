/**
 * What keypool adds to a proxied request: the reference proxy (examples/proxy) in front of the
 * fake chat upstream, with keypool (dist/, default durable configuration, 10 keys) leasing the keys.
 *
 *     npx tsx bench/proxy-overhead.ts [--requests 2000] [--concurrency 8] [--latency 0ms] [--state memory] [--no-build]
 *
 * Three processes besides this one (the load generator): keypool, the proxy and the fake
 * upstream. Rounds alternate the two paths with the same load: straight to the fake upstream
 * (its own latency, as a client sees it) and through the proxy. For each proxied request the
 * proxy logs the time it spent in keypool's calls (Lease + ReportRateLimit + IncrementUsage,
 * the helper's `keypoolMs`). `--state memory` runs keypool without its state file (no commit to
 * wait for in ReportRateLimit and IncrementUsage). Prints a Markdown table and writes bench/results/proxy-overhead.json.
 */
import { execFileSync } from "node:child_process";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { coreLayout, sleep, start, type Started } from "./lib/children";
import { freePort, ROOT, startKeypool } from "./lib/keypool-server";
import { benchKey, writeKeysFile } from "./lib/keys-file";
import { fmt, summarize, type LatencySummary } from "./lib/stats";

/** TypeScript children run in one node process each (tsx as a loader), so that a kill reaches them. */
const TS = ["--import", "tsx"];

function option(name: string, fallback: string): string {
  const i = process.argv.indexOf(name);
  return i >= 0 ? process.argv[i + 1] : fallback;
}

async function waitForLine(proc: Started, pattern: RegExp, ms = 60_000): Promise<void> {
  const until = Date.now() + ms;
  while (!pattern.test(proc.stdout())) {
    if (Date.now() > until || proc.child.exitCode !== null) throw new Error(`child did not start:\n${proc.stderr().slice(-2000)}`);
    await sleep(20);
  }
}

/** `requests` POSTs at `concurrency` in flight; the latency of each, in ms. */
async function load(url: string, headers: Record<string, string>, requests: number, concurrency: number): Promise<number[]> {
  const samples: number[] = [];
  let next = 0;
  let failed = 0;
  const body = JSON.stringify({ model: "gpt-4o-mini", messages: [{ role: "user", content: "How are keys shared between proxies?" }] });
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (next < requests) {
        next++;
        const t0 = performance.now();
        const response = await fetch(url, { method: "POST", headers: { "content-type": "application/json", ...headers }, body });
        await response.arrayBuffer();
        samples.push(performance.now() - t0);
        if (response.status !== 200) failed++;
      }
    }),
  );
  if (failed) throw new Error(`${failed} of ${requests} requests to ${url} failed`);
  return samples;
}

async function main(): Promise<void> {
  const requests = Number(option("--requests", "2000"));
  const concurrency = Number(option("--concurrency", "8"));
  const latency = option("--latency", "0ms");
  const rounds = 3;
  const state = option("--state", "file");
  if (!process.argv.includes("--no-build")) execFileSync("npm", ["run", "build"], { cwd: ROOT, stdio: "inherit" });

  const layout = coreLayout();
  const dir = mkdtempSync(path.join(os.tmpdir(), "keypool-proxy-bench-"));
  const keysFile = path.join(dir, "keys.json");
  writeKeysFile(keysFile, 10);
  const keypool = await startKeypool({ env: { KEYPOOL_KEYS_FILE: keysFile, ...(state === "memory" ? { KEYPOOL_STATE: "memory" } : {}) }, cpus: layout.server });
  const upstreamPort = await freePort();
  const upstream = start(process.execPath, [...TS, "src/fake-upstream/chat-main.ts", "--port", String(upstreamPort), "--latency", latency], layout.load, { cwd: ROOT });
  const proxyPort = await freePort();
  const proxy = start(process.execPath, [...TS, "examples/proxy/main.ts"], layout.load, {
    cwd: ROOT,
    env: {
      ...process.env,
      KEYPOOL_URL: `http://127.0.0.1:${keypool.port}`,
      OPENAI_BASE_URL: `http://127.0.0.1:${upstreamPort}`,
      ANTHROPIC_BASE_URL: `http://127.0.0.1:${upstreamPort}`,
      PORT: String(proxyPort),
    },
  });
  try {
    await waitForLine(upstream, /listening/);
    await waitForLine(proxy, /proxy listening/);
    const direct = `http://127.0.0.1:${upstreamPort}/v1/chat/completions`;
    const proxied = `http://127.0.0.1:${proxyPort}/v1/chat/completions`;
    const auth = { authorization: `Bearer ${benchKey(0)}` };
    // Warm-up: JIT, connections, keypool's first leases.
    await load(direct, auth, 200, concurrency);
    await load(proxied, {}, 200, concurrency);
    // The proxy writes its log line after answering: wait for the warm-up's lines.
    const proxiedLines = () => proxy.stdout().split("\n").filter((line) => line.includes('"msg":"proxied"'));
    const settled = async (count: number) => {
      for (let i = 0; i < 200 && proxiedLines().length < count; i++) await sleep(25);
    };
    await settled(200);
    const warmUpLines = proxiedLines().length;

    const directSamples: number[] = [];
    const proxiedSamples: number[] = [];
    for (let round = 0; round < rounds; round++) {
      const order = round % 2 === 0 ? ["direct", "proxied"] : ["proxied", "direct"];
      for (const which of order) {
        if (which === "direct") directSamples.push(...(await load(direct, auth, requests, concurrency)));
        else proxiedSamples.push(...(await load(proxied, {}, requests, concurrency)));
      }
    }
    await settled(warmUpLines + proxiedSamples.length);
    const keypoolSamples = proxiedLines()
      .slice(warmUpLines)
      .map((line) => (JSON.parse(line) as { keypoolMs: number }).keypoolMs);
    if (keypoolSamples.length !== proxiedSamples.length) {
      throw new Error(`the proxy logged ${keypoolSamples.length} requests, ${proxiedSamples.length} were sent`);
    }

    const rows: [string, LatencySummary][] = [
      ["fake upstream, direct (its own latency)", summarize(directSamples)],
      ["through the proxy (client to client)", summarize(proxiedSamples)],
      ["keypool's share inside the proxy (Lease + ReportRateLimit + IncrementUsage)", summarize(keypoolSamples)],
    ];
    const machine = { date: new Date().toISOString(), cpu: os.cpus()[0]?.model, nproc: os.availableParallelism(), loadAverage: os.loadavg().map((x) => Number(x.toFixed(2))), cores: layout.note };
    const settings = { requestsPerRound: requests, rounds, concurrency, upstreamLatency: latency, keys: 10, keypoolState: state };
    console.log(`\n${JSON.stringify(machine)}\n${JSON.stringify(settings)}\n`);
    console.log("| path | requests | p50 ms | p99 ms |");
    console.log("|---|---|---|---|");
    for (const [name, s] of rows) console.log(`| ${name} | ${s.count} | ${fmt(s.p50Ms)} | ${fmt(s.p99Ms)} |`);
    const direct50 = rows[0][1].p50Ms;
    console.log(`\nkeypool p50 / upstream p50: ${fmt(rows[2][1].p50Ms / direct50)}; proxy p50 / upstream p50: ${fmt(rows[1][1].p50Ms / direct50)}`);
    mkdirSync(path.join(ROOT, "bench/results"), { recursive: true });
    writeFileSync(path.join(ROOT, `bench/results/proxy-overhead-${state}.json`), JSON.stringify({ machine, settings, rows: Object.fromEntries(rows) }, null, 2) + "\n");
  } finally {
    await proxy.kill();
    await upstream.kill();
    await keypool.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
