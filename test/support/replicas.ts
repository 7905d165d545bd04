/**
 * Several keypool replicas on one private Redis, as operators run them: built servers (child
 * processes) with KEYPOOL_STATE=redis://..., each with its own port (and native gRPC port), and
 * typed clients for each. Close with `close()` in afterAll/afterEach.
 */
import { createClient, type Client } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { KeyAdminService, KeyPoolService } from "../../gen/ts/keypool/v1/keypool_pb";
import { Health } from "../../gen/ts/grpc/health/v1/health_pb";
import { spawnServer, type ChildServer } from "./child-server";
import type { RedisServer } from "./redis-server";

export interface Replica {
  server: ChildServer;
  /** The native gRPC port (KEYPOOL_GRPC_PORT). */
  grpcPort: number;
  pool: Client<typeof KeyPoolService>;
  admin: Client<typeof KeyAdminService>;
  health: Client<typeof Health>;
  /** The same services on the native gRPC port. */
  native: { pool: Client<typeof KeyPoolService>; health: Client<typeof Health> };
}

export interface Replicas {
  readonly replicas: Replica[];
  /** Starts one more replica on the same Redis. */
  add(): Promise<Replica>;
  /** SIGKILLs every replica still running. */
  close(): Promise<void>;
}

function clientsOf(server: ChildServer): Replica {
  const listening = server.logs.find((l) => l.msg === "keypool listening")!;
  const grpcPort = listening.grpcPort as number;
  const main = createGrpcTransport({ baseUrl: server.url });
  const native = createGrpcTransport({ baseUrl: `http://127.0.0.1:${grpcPort}` });
  return {
    server,
    grpcPort,
    pool: createClient(KeyPoolService, main),
    admin: createClient(KeyAdminService, main),
    health: createClient(Health, main),
    native: { pool: createClient(KeyPoolService, native), health: createClient(Health, native) },
  };
}

/** `count` replicas on `redis`, started at once (so that they also race to fill an empty Redis). */
export async function startReplicas(redis: RedisServer, count: number, env: Record<string, string> = {}): Promise<Replicas> {
  const replicas: Replica[] = [];
  const add = async () => {
    const server = await spawnServer({ KEYPOOL_STATE: redis.url, KEYPOOL_GRPC_PORT: "0", KEYPOOL_CHECK_KEYS: "false", ...env });
    const replica = clientsOf(server);
    replicas.push(replica);
    return replica;
  };
  try {
    await Promise.all(Array.from({ length: count }, add));
  } catch (err) {
    await Promise.all(replicas.map((r) => r.server.stop("SIGKILL")));
    throw err;
  }
  return {
    replicas,
    add,
    close: async () => {
      await Promise.all(replicas.map((r) => r.server.stop("SIGKILL")));
    },
  };
}

/** Polls `check` until it holds, or fails naming `what`. */
export async function eventually(check: () => boolean | Promise<boolean>, what: string, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await check()) return;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
}
