/**
 * What keypool's own layers cost per WatchKeys message, without the network: the watch hub, the
 * subscriptions, the WatchKeys stream, the error-mapping interceptor's wrapper and the loop that
 * writes (what the native port runs between the pool's change and grpc-js's call.write), for this
 * build and others (`--baseline=<dir>[,<dir>]`, each holding a build's dist/), in alternating
 * child processes.
 *
 *   npx tsx bench/watch-fanout-layers.ts --baseline=/tmp/base-1787111 [--rounds=4] [--seconds=5] [--subscribers=1000]
 *
 * Each pass opens the subscribers with `batch` on a pool of 10 keys, changes one key every
 * millisecond for the pass (so every subscriber is due one `changes` message per 100 ms window, as
 * in bench/watch-fanout-ab.ts), and writes each message's encoding (as the native port's
 * serializer does) into a sink whose write callback comes on a later turn, as node:http2's does.
 * It prints, per build, the main thread's CPU per message delivered and the young- and
 * old-generation collections per 1,000 messages: the part of a message's cost that is keypool's,
 * measured apart from grpc-js, node:http2 and the machine's other load (a ratio in one run).
 */
import { execFileSync } from "node:child_process";
import { setMaxListeners } from "node:events";
import * as path from "node:path";
import { PerformanceObserver, constants } from "node:perf_hooks";
import { fmt, median } from "./lib/stats";

interface PassResult {
  messages: number;
  cpuUsPerMessage: number;
  scavengesPer1k: number;
  markCompacts: number;
  gcMs: number;
}

const arg = (name: string, fallback: string) => process.argv.find((a) => a.startsWith(`--${name}=`))?.slice(name.length + 3) ?? fallback;

async function pass(dist: string, seconds: number, subscribers: number): Promise<PassResult> {
  /* eslint-disable @typescript-eslint/no-require-imports */
  const { ChangeFeed } = require(path.join(dist, "src/domain/change-feed.js"));
  const { StatusView } = require(path.join(dist, "src/domain/key-view.js"));
  const { freshKeyStatus } = require(path.join(dist, "src/domain/key-entry.js"));
  const { systemClock } = require(path.join(dist, "src/domain/clock.js"));
  const { WatchHub } = require(path.join(dist, "src/watch/watch-hub.js"));
  const { createWatchKeys, encodedStatusBytes } = require(path.join(dist, "src/transport/watch-keys.js"));
  const { onStreamEnd } = require(path.join(dist, "src/transport/stream-end.js"));
  const { encodedBytes } = require(path.join(dist, "src/transport/pre-encoded.js"));
  let writeEach: ((messages: AsyncIterator<unknown>, signal: AbortSignal, write: (m: unknown, done: (err?: Error | null) => void) => void) => Promise<void>) | undefined;
  try {
    writeEach = require(path.join(dist, "src/server/write-each.js")).writeEach;
  } catch {
    writeEach = undefined; // the build before: the adapter's `for await` loop, below
  }
  /* eslint-enable @typescript-eslint/no-require-imports */

  const changes = new ChangeFeed();
  const statuses = new Map<string, unknown>();
  const hashes = Array.from({ length: 10 }, (_, i) => `key-${String(i).padStart(4, "0")}`);
  for (const hash of hashes) statuses.set(hash, freshKeyStatus(hash, "openai", ["gpt4"]));
  const pool = {
    changes,
    getKey: (hash: string) => statuses.get(hash),
    *viewKeys() {
      for (const status of statuses.values()) yield new StatusView(status);
    },
    *keysAfter(after: string) {
      for (const hash of [...statuses.keys()].sort()) if (hash > after) yield statuses.get(hash);
    },
    listKeys: () => [...statuses.values()],
  };
  const hub = new WatchHub(pool, { clock: systemClock, measure: encodedStatusBytes, saturated: () => false });
  const watchKeys = createWatchKeys(hub);
  const shutdown = new AbortController();
  setMaxListeners(0, shutdown.signal);
  let messages = 0;
  let counting = false;
  // The sink: a write's callback comes on a later turn, all of one turn's together.
  let callbacks: (() => void)[] = [];
  const flush = () => {
    const due = callbacks;
    callbacks = [];
    for (const done of due) done();
  };
  const sink = (message: unknown, done: () => void) => {
    encodedBytes(message);
    if (counting) messages++;
    if (callbacks.push(done) === 1) setImmediate(flush);
  };
  const ends: Promise<void>[] = [];
  for (let i = 0; i < subscribers; i++) {
    const ctx = { signal: shutdown.signal, requestHeader: new Headers({ "content-type": "application/grpc+proto" }) };
    const stream = onStreamEnd(watchKeys({ provider: 0, modelFamilies: [], batch: true }, ctx), { error: (err: unknown) => err });
    const it = stream[Symbol.asyncIterator]();
    if (writeEach) {
      ends.push(writeEach(it, shutdown.signal, (message, done) => sink(message, () => done())).catch(() => undefined));
    } else {
      ends.push(
        (async () => {
          for await (const message of { [Symbol.asyncIterator]: () => it }) {
            await new Promise<void>((resolve) => sink(message, resolve));
          }
        })().catch(() => undefined),
      );
    }
  }
  let turn = 0;
  const changer = setInterval(() => {
    const hash = hashes[turn++ % hashes.length]!;
    const status = { ...(statuses.get(hash) as object), leasedCount: turn } as never;
    statuses.set(hash, status);
    changes.publish({ type: "updated", cause: "leased", key: new StatusView(status) });
  }, 1);
  await new Promise((resolve) => setTimeout(resolve, 1500));

  let scavenges = 0;
  let markCompacts = 0;
  let gcMs = 0;
  const observer = new PerformanceObserver((list) => {
    for (const entry of list.getEntries()) {
      const kind = (entry as unknown as { detail?: { kind?: number } }).detail?.kind;
      gcMs += entry.duration;
      if (kind === constants.NODE_PERFORMANCE_GC_MINOR) scavenges++;
      else if (kind === constants.NODE_PERFORMANCE_GC_MAJOR) markCompacts++;
    }
  });
  observer.observe({ entryTypes: ["gc"] });
  counting = true;
  const cpuBefore = process.cpuUsage();
  await new Promise((resolve) => setTimeout(resolve, seconds * 1000));
  const cpu = process.cpuUsage(cpuBefore);
  counting = false;
  await new Promise((resolve) => setImmediate(resolve));
  observer.disconnect();
  clearInterval(changer);
  shutdown.abort();
  hub.close();
  await Promise.all(ends);
  return {
    messages,
    cpuUsPerMessage: (cpu.user + cpu.system) / messages,
    scavengesPer1k: (scavenges * 1000) / messages,
    markCompacts,
    gcMs,
  };
}

async function main(): Promise<void> {
  const child = arg("child", "");
  const seconds = Number(arg("seconds", "5"));
  const subscribers = Number(arg("subscribers", "1000"));
  if (child) {
    process.stdout.write(JSON.stringify(await pass(child, seconds, subscribers)) + "\n");
    return;
  }
  const rounds = Number(arg("rounds", "4"));
  const baseline = arg("baseline", "");
  const builds: { label: string; dist: string }[] = [{ label: "this build", dist: path.resolve(__dirname, "..", "dist") }];
  for (const dir of baseline.split(",").filter(Boolean)) builds.push({ label: dir, dist: path.join(path.resolve(dir), "dist") });
  const results = new Map<string, PassResult[]>(builds.map((b) => [b.label, []]));
  console.log(`# keypool's layers per WatchKeys message: ${subscribers} subscribers with batch, 10 keys, one change per ms, ${seconds} s per pass, ${rounds} rounds`);
  for (let round = 0; round < rounds; round++) {
    for (const build of round % 2 === 0 ? builds : [...builds].reverse()) {
      const out = execFileSync(process.execPath, [...process.execArgv, __filename, `--child=${build.dist}`, `--seconds=${seconds}`, `--subscribers=${subscribers}`], {
        encoding: "utf8",
      });
      const result = JSON.parse(out.trim().split("\n").pop()!) as PassResult;
      results.get(build.label)!.push(result);
      console.log(
        `round ${round + 1} ${build.label}: ${result.messages} messages, ${fmt(result.cpuUsPerMessage)} µs/message, ` +
          `${fmt(result.scavengesPer1k)} scavenges per 1,000 messages, ${result.markCompacts} mark-compacts, GC ${fmt(result.gcMs)} ms`,
      );
    }
  }
  console.log("\n| build | messages/s | µs/message (rounds) | scavenges per 1,000 messages | GC ms per pass |\n|---|---|---|---|---|");
  for (const build of builds) {
    const rs = results.get(build.label)!;
    console.log(
      `| ${build.label} | ${fmt(median(rs.map((r) => r.messages / seconds)))} | ${fmt(median(rs.map((r) => r.cpuUsPerMessage)))} (${rs.map((r) => fmt(r.cpuUsPerMessage)).join(", ")}) | ` +
        `${fmt(median(rs.map((r) => r.scavengesPer1k)))} | ${fmt(median(rs.map((r) => r.gcMs)))} |`,
    );
  }
}

void main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
