#!/usr/bin/env node
/**
 * Runs the fake chat upstream (chat.ts, chat-server.ts) on loopback until SIGTERM or Ctrl-C:
 *
 *     npx tsx src/fake-upstream/chat-main.ts [--port 8090] [--latency 0ms] [--rate-limit-every 0]
 *
 * Every key is answered (200 with rate-limit headers); with --rate-limit-every N, each key's
 * every N-th request gets a 429 instead. Prints one JSON line with its URL.
 */
import { parseDurationMs } from "../domain/duration";
import { FakeChat, rateLimitedEvery } from "./chat";
import { startFakeChatServer } from "./chat-server";

function option(args: string[], name: string): string | undefined {
  const i = args.indexOf(name);
  return i >= 0 ? args[i + 1] : undefined;
}

async function main(): Promise<void> {
  const args = process.argv.slice(2);
  const port = Number(option(args, "--port") ?? "8090");
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw new Error("--port must be 0-65535");
  const latency = option(args, "--latency") ?? "0ms";
  const latencyMs = parseDurationMs(latency);
  if (latencyMs === undefined) throw new Error(`--latency "${latency}" is not a duration (e.g. 20ms)`);
  const every = Number(option(args, "--rate-limit-every") ?? "0");
  if (!Number.isInteger(every) || every < 0) throw new Error("--rate-limit-every must be a whole number");
  const chat = new FakeChat({ latencyMs, defaultPlan: every > 0 ? rateLimitedEvery(every) : undefined });
  const server = await startFakeChatServer(chat, { port, host: option(args, "--host") });
  process.stdout.write(JSON.stringify({ msg: "fake chat upstream listening", url: server.url }) + "\n");
  const stop = () => void server.close().then(() => process.exit(0));
  process.on("SIGTERM", stop);
  process.on("SIGINT", stop);
}

main().catch((err: unknown) => {
  process.stderr.write(`fake chat upstream: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exit(1);
});
