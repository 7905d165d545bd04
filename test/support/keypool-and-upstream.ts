/**
 * A real keypool (test-server.ts) beside a fake chat upstream (src/fake-upstream/chat.ts) on
 * loopback, with every log line either of them writes kept for the no-secret checks.
 */
import { Writable } from "node:stream";
import { FakeChat, type FakeChatOptions } from "../../src/fake-upstream/chat";
import { startFakeChatServer, type FakeChatServer } from "../../src/fake-upstream/chat-server";
import { createLogger } from "../../src/log";
import type { KeySpec } from "../../src/domain/types";
import { startTestServer, type TestServer, type TestServerOptions } from "./test-server";

export interface KeypoolAndUpstream {
  keypool: TestServer;
  chat: FakeChat;
  upstream: FakeChatServer;
  /** keypool's log lines (debug level and up). */
  serverLog: string[];
  /** The key hash of each secret. */
  hashOf(secret: string): string;
  close(): Promise<void>;
}

export async function startKeypoolAndUpstream(
  keys: KeySpec[],
  options: { chat?: FakeChatOptions; keypool?: Omit<TestServerOptions, "keys" | "deps"> } = {},
): Promise<KeypoolAndUpstream> {
  const serverLog: string[] = [];
  const destination = new Writable({
    write(chunk: Buffer, _encoding, done) {
      serverLog.push(...chunk.toString("utf8").split("\n").filter(Boolean));
      done();
    },
  });
  const keypool = await startTestServer({ ...options.keypool, deps: { logger: createLogger({ level: "debug", destination }) } });
  const { keyHashes } = await keypool.pool.addKeys(keys);
  const hashes = new Map(keys.map((spec, i) => [spec.key, keyHashes[i]]));
  const chat = new FakeChat(options.chat);
  const upstream = await startFakeChatServer(chat);
  return {
    keypool,
    chat,
    upstream,
    serverLog,
    hashOf(secret) {
      const hash = hashes.get(secret);
      if (!hash) throw new Error("unknown test secret");
      return hash;
    },
    async close() {
      await upstream.close();
      await keypool.close();
    },
  };
}
