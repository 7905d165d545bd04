/**
 * A real server (real pool, real hub, real sockets on 127.0.0.1:0) for the WatchKeys end-to-end
 * tests, plus clients for every wire protocol.
 */
import { createClient, type Client } from "@connectrpc/connect";
import * as http2 from "node:http2";
import type { PortName } from "../support/ports";
import { grpcFrame } from "../support/raw-grpc";
import { createConnectTransport, createGrpcTransport, createGrpcWebTransport } from "@connectrpc/connect-node";
import { systemClock } from "../../src/domain/clock";
import { KeyPool, type PoolOptions } from "../../src/domain/key-pool";
import { startServer, type RunningServer } from "../../src/server/start-server";
import { createWatchKeys, encodedStatusBytes } from "../../src/transport/watch-keys";
import { WatchHub, type WatchHubOptions } from "../../src/watch/watch-hub";
import { KeyPoolService, type KeyStatus, type WatchKeysResponse } from "../../gen/ts/keypool/v1/keypool_pb";
import { hashKey } from "../../src/domain/key-hash";
import type { PoolApi } from "../../src/domain/pool-api";
import type { KeySpec } from "../../src/domain/types";
import { startDeployedServer, type Deployment } from "../support/deployments";

export interface WatchServer {
  pool: KeyPool;
  hub: WatchHub;
  server: RunningServer;
  keyHashes: string[];
  close(): Promise<void>;
}

const watchKeySpecs = (count: number): KeySpec[] =>
  Array.from({ length: count }, (_, i) => ({
    provider: "openai" as const,
    key: `sk-watch-test-${i}-${"x".repeat(20)}`,
    modelFamilies: ["gpt4o", "turbo"],
  }));

export async function startWatchServer(
  options: { keys?: number; port?: number; pool?: Partial<PoolOptions>; hub?: Partial<WatchHubOptions> } = {},
): Promise<WatchServer> {
  const pool = new KeyPool({ clock: systemClock, reuseDelayMs: 0, ...options.pool });
  const { keyHashes } = pool.addKeys(watchKeySpecs(options.keys ?? 5));
  const hub = new WatchHub(pool, { clock: systemClock, measure: encodedStatusBytes, ...options.hub });
  const server = await startServer(
    { host: "127.0.0.1", port: options.port ?? 0, grpcPort: 0 },
    { pool, watchKeys: createWatchKeys(hub), shutdownGraceMs: 1000 },
  );
  return {
    pool,
    hub,
    server,
    keyHashes,
    async close() {
      await server.close();
      hub.close();
      pool.close();
    },
  };
}

/** The hub's counts a suite checks, summed over the replicas' hubs when there are several. */
export type HubCounts = Pick<WatchHub, "subscriberCount" | "signalListenerCount" | "indexedCount" | "timerCount" | "pendingCount">;

/** startWatchServer's server as any deployment (test/support/deployments.ts) provides it. */
export interface WatchDeployment {
  /** Calls on it reach every replica; awaited, whichever pool it is. */
  pool: PoolApi & { readonly changes: { readonly size: number } };
  hub: HubCounts;
  /** Where clients connect (for urlOf and portOf). */
  server: { url: string; port: number; grpcUrl?: string; grpcPort?: number };
  keyHashes: string[];
  close(): Promise<void>;
}

export async function startWatchDeployment(
  deployment: Deployment,
  options: { keys?: number; hub?: Partial<WatchHubOptions> } = {},
): Promise<WatchDeployment> {
  if (deployment === "one keypool") return startWatchServer(options);
  const specs = watchKeySpecs(options.keys ?? 5);
  const d = await startDeployedServer(deployment, { clock: systemClock, pool: { reuseDelayMs: 0 }, keys: specs, hub: options.hub });
  const sum = (count: (hub: WatchHub) => number) => d.hubs.reduce((total, hub) => total + count(hub), 0);
  return {
    pool: d.pool as WatchDeployment["pool"],
    hub: {
      get subscriberCount() {
        return sum((h) => h.subscriberCount);
      },
      get signalListenerCount() {
        return sum((h) => h.signalListenerCount);
      },
      get indexedCount() {
        return sum((h) => h.indexedCount);
      },
      get timerCount() {
        return sum((h) => h.timerCount);
      },
      get pendingCount() {
        return sum((h) => h.pendingCount);
      },
    },
    server: d,
    keyHashes: specs.map((spec) => hashKey(spec.provider, spec.key!, "")),
    close: () => d.close(),
  };
}

export type Protocol = "grpc" | "grpc-web" | "connect" | "connect-http1" | "grpc-web-http1" | "connect-json" | "grpc-json";
/** Every wire protocol, with binary messages (the default of connect-node) and with JSON. */
export const PROTOCOLS: Protocol[] = ["grpc", "grpc-web", "connect", "connect-http1", "grpc-web-http1", "connect-json", "grpc-json"];

/** What each port speaks: the main port every protocol, the native gRPC port gRPC with protobuf. */
export const PROTOCOLS_OF: Record<PortName, Protocol[]> = { main: PROTOCOLS, native: ["grpc"] };

export function poolClient(url: string, protocol: Protocol = "grpc"): Client<typeof KeyPoolService> {
  switch (protocol) {
    case "grpc":
      return createClient(KeyPoolService, createGrpcTransport({ baseUrl: url }));
    case "grpc-web":
      return createClient(KeyPoolService, createGrpcWebTransport({ baseUrl: url, httpVersion: "2" }));
    case "grpc-web-http1":
      return createClient(KeyPoolService, createGrpcWebTransport({ baseUrl: url, httpVersion: "1.1" }));
    case "connect":
      return createClient(KeyPoolService, createConnectTransport({ baseUrl: url, httpVersion: "2" }));
    case "connect-http1":
      return createClient(KeyPoolService, createConnectTransport({ baseUrl: url, httpVersion: "1.1" }));
    case "connect-json":
      return createClient(KeyPoolService, createConnectTransport({ baseUrl: url, httpVersion: "2", useBinaryFormat: false }));
    case "grpc-json":
      return createClient(KeyPoolService, createGrpcTransport({ baseUrl: url, useBinaryFormat: false }));
  }
}

/**
 * A client-side view of one stream: what it shows, and every sequence number seen. It follows the
 * contract's rule: snapshot slices are collected until the one with `more` false, and updates are
 * applied only after it (an update before it is recorded as a violation).
 */
export class StreamView {
  readonly keys = new Map<string, KeyStatus>();
  readonly sequences: bigint[] = [];
  readonly kinds: string[] = [];
  /** Whether the last snapshot slice has arrived. */
  synced = false;
  /** Keys per snapshot slice, in order. */
  readonly sliceSizes: number[] = [];
  /** Messages that broke the contract's order (an update before the last slice). */
  readonly violations: string[] = [];
  error: unknown = undefined;
  ended = false;
  private collecting: KeyStatus[] = [];
  private waiters: (() => void)[] = [];

  apply(message: WatchKeysResponse): void {
    this.sequences.push(message.sequence);
    this.kinds.push(message.event.case ?? "none");
    const event = message.event;
    if (event.case === "snapshot") {
      this.sliceSizes.push(event.value.keys.length);
      this.collecting.push(...event.value.keys);
      if (!event.value.more) {
        this.keys.clear();
        for (const key of this.collecting) this.keys.set(key.keyHash, key);
        this.collecting = [];
        this.synced = true;
      }
    } else if (event.case !== "heartbeat" && !this.synced) {
      this.violations.push(`${event.case} before the last snapshot slice`);
    } else if (event.case === "updated") {
      this.keys.set(event.value.keyHash, event.value);
    } else if (event.case === "removedKeyHash") {
      this.keys.delete(event.value);
    } else if (event.case === "changes") {
      for (const key of event.value.updated) this.keys.set(key.keyHash, key);
      for (const keyHash of event.value.removedKeyHashes) this.keys.delete(keyHash);
    }
    for (const wake of this.waiters.splice(0)) wake();
  }

  /** Reads a stream into this view until it ends; never rejects (the error is kept). */
  consume(stream: AsyncIterable<WatchKeysResponse>): Promise<void> {
    return (async () => {
      try {
        for await (const message of stream) this.apply(message);
      } catch (error) {
        this.error = error;
      } finally {
        this.ended = true;
        for (const wake of this.waiters.splice(0)) wake();
      }
    })();
  }

  /** Resolves when `predicate` holds (checked after each message), or rejects after `timeoutMs`. */
  async until(predicate: () => boolean, timeoutMs = 10_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!predicate()) {
      if (this.ended) throw new Error(`stream ended first: ${String(this.error)}`);
      const left = deadline - Date.now();
      if (left <= 0) throw new Error("timed out waiting for the stream");
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, Math.min(left, 200));
        this.waiters.push(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
  }
}

/** Polls `predicate` until it holds, for conditions outside any stream (server-side counts). */
export async function eventually(predicate: () => boolean, timeoutMs = 10_000, what = "condition"): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!predicate()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

/**
 * A WatchKeys call over a raw HTTP/2 session (no client library): the test controls reading, and
 * with it HTTP/2 flow control. Close the session when done.
 */
export function rawWatch(url: string, settings?: http2.Settings): { session: http2.ClientHttp2Session; stream: http2.ClientHttp2Stream } {
  const session = http2.connect(url, settings ? { settings } : {});
  session.on("error", () => undefined);
  const stream = session.request({
    ":method": "POST",
    ":path": "/keypool.v1.KeyPoolService/WatchKeys",
    "content-type": "application/grpc",
    te: "trailers",
  });
  stream.on("error", () => undefined);
  stream.end(grpcFrame(new Uint8Array(0)));
  return { session, stream };
}
