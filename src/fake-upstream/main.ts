#!/usr/bin/env node
/**
 * keypool-fake-upstream: runs the fake upstream of every provider (fake-upstream.ts) on loopback
 * until SIGTERM or Ctrl-C. Options: --port N (default 8090), --host 127.0.0.1, --latency 500ms,
 * --slow 120s, --rate-limit-every N. Keys named for a behaviour (behaviours.ts) get the checker's
 * answers; every other key is a chat key: its chats succeed, or with --rate-limit-every N each
 * key's every N-th chat gets a 429. Prints one JSON line with its URL and a key of each behaviour.
 */
import { parseDurationMs } from "../domain/duration";
import { BEHAVIOURS, fakeAwsAccessKeyId, fakeAwsSecret, fakeVertexEmail } from "./behaviours";
import { FakeChat, rateLimitedEvery } from "./chat";
import { FakeUpstream } from "./fake-upstream";

function option(args: string[], name: string): string | undefined {
  const i = args.indexOf(name);
  return i >= 0 ? args[i + 1] : undefined;
}

function duration(args: string[], name: string): number | undefined {
  const raw = option(args, name);
  if (raw === undefined) return undefined;
  const ms = parseDurationMs(raw);
  if (ms === undefined) throw new Error(`${name} "${raw}" is not a duration (e.g. 500ms, 2s)`);
  return ms;
}

async function main(): Promise<void> {
  const args = process.argv.slice(2);
  if (args.includes("--help")) {
    process.stdout.write("keypool-fake-upstream [--port 8090] [--host 127.0.0.1] [--latency 0ms] [--slow 120s] [--rate-limit-every 0]\n");
    return;
  }
  const port = Number(option(args, "--port") ?? "8090");
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw new Error("--port must be 0-65535");
  const every = Number(option(args, "--rate-limit-every") ?? "0");
  if (!Number.isInteger(every) || every < 0) throw new Error("--rate-limit-every must be a whole number");
  const fake = await FakeUpstream.start({
    host: option(args, "--host") ?? "127.0.0.1",
    port,
    latencyMs: duration(args, "--latency"),
    slowMs: duration(args, "--slow"),
    chat: new FakeChat({ defaultPlan: every > 0 ? rateLimitedEvery(every) : undefined }),
    chatForUnknownKeys: true,
  });
  process.stdout.write(
    JSON.stringify({
      msg: "fake upstream listening",
      url: fake.url,
      openaiKeys: BEHAVIOURS.map((b) => `sk-fake-${b}-1`),
      anthropicKeys: BEHAVIOURS.map((b) => `sk-ant-fake-${b}-1`),
      googleAiKeys: BEHAVIOURS.map((b) => `AIza-fake-${b}-1`),
      mistralKeys: BEHAVIOURS.map((b) => `mistral-fake-${b}-1`),
      azureKeys: BEHAVIOURS.map((b) => `fake-resource:gpt-4o:azure-fake-${b}-1`),
      bedrockKeys: BEHAVIOURS.map((b) => `${fakeAwsAccessKeyId(b)}:us-east-1:${fakeAwsSecret(fakeAwsAccessKeyId(b))}`),
      // Vertex credentials: "<project>:<region>:<client email>:<the PEM of GET /fake/vertex-private-key>".
      vertexClientEmails: BEHAVIOURS.map((b) => fakeVertexEmail(b)),
    }) + "\n",
  );
  const stop = () => void fake.close().then(() => process.exit(0));
  process.on("SIGTERM", stop);
  process.on("SIGINT", stop);
}

main().catch((err: unknown) => {
  process.stderr.write(`keypool-fake-upstream: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exit(1);
});
