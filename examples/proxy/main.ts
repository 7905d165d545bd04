/**
 * Runs the reference proxy (proxy.ts):
 *
 *     KEYPOOL_URL=http://127.0.0.1:50051 OPENAI_BASE_URL=http://127.0.0.1:8090 \
 *       ANTHROPIC_BASE_URL=http://127.0.0.1:8090 PORT=8080 npx tsx examples/proxy/main.ts
 *
 * KEYPOOL_TOKEN: a bearer token with the `lease` role when keypool requires tokens.
 * PROXY_MAX_WAIT_MS (10000), PROXY_TIMEOUT_MS (120000), PROXY_ATTEMPTS (3). One JSON line per
 * request on stdout. Listens on 127.0.0.1 unless HOST says otherwise.
 */
import type { AddressInfo } from "node:net";
import { KeyPoolHelper } from "../../clients/ts/src";
import { createProxy } from "./proxy";

function numberFrom(name: string, fallback: number): number {
  const raw = process.env[name];
  if (raw === undefined || raw === "") return fallback;
  const value = Number(raw);
  if (!Number.isFinite(value) || value < 0) throw new Error(`${name} must be a non-negative number, not "${raw}"`);
  return value;
}

function main(): void {
  const log = (line: Record<string, unknown>) => process.stdout.write(JSON.stringify({ time: new Date().toISOString(), ...line }) + "\n");
  const helper = new KeyPoolHelper({
    baseUrl: process.env.KEYPOOL_URL ?? "http://127.0.0.1:50051",
    token: process.env.KEYPOOL_TOKEN || undefined,
    onEvent: (event) => {
      if (event.type === "error" || event.type === "retry") log({ msg: "keypool", ...event });
    },
  });
  const server = createProxy({
    helper,
    openaiBaseUrl: process.env.OPENAI_BASE_URL ?? "https://api.openai.com",
    anthropicBaseUrl: process.env.ANTHROPIC_BASE_URL ?? "https://api.anthropic.com",
    maxWaitMs: numberFrom("PROXY_MAX_WAIT_MS", 10_000),
    timeoutMs: numberFrom("PROXY_TIMEOUT_MS", 120_000),
    attempts: numberFrom("PROXY_ATTEMPTS", 3),
    log,
  });
  server.listen(numberFrom("PORT", 8080), process.env.HOST ?? "127.0.0.1", () => {
    const { address, port } = server.address() as AddressInfo;
    log({ msg: "proxy listening", url: `http://${address}:${port}` });
  });
  const stop = () => server.close(() => process.exit(0));
  process.on("SIGTERM", stop);
  process.on("SIGINT", stop);
}

main();
