/**
 * deploy/replicas/compose.yaml without containers (no docker runs where the tests run): the file
 * is read as Compose reads it (YAML with merge keys, then `${VAR:?}`, `${VAR:-}` and `$$`
 * interpolated in its values), its structure is checked against what the README promises, and
 * its Redis command and keypool environment are run for real: redis-server with the compose file's arguments, three replicas
 * with the compose file's environment, serving one pool behind its tokens.
 */
import { execFileSync } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";
import { createClient, Code } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import Redis from "ioredis";
import { parse } from "yaml";
import { KeyPoolService } from "../../gen/ts/keypool/v1/keypool_pb";
import { allSettings } from "../../src/config/settings";
import { ensureBuilt, REPO_ROOT } from "../support/child-server";
import { startRedisServer, type RedisServer } from "../support/redis-server";
import { startReplicas, type Replicas } from "../support/replicas";

jest.setTimeout(90_000);

const COMPOSE_DIR = path.join(REPO_ROOT, "deploy/replicas");
const COMPOSE_FILE = path.join(COMPOSE_DIR, "compose.yaml");

interface Service {
  build?: { context: string; dockerfile: string };
  image?: string;
  command?: string[];
  environment?: Record<string, string>;
  ports?: string[];
  depends_on?: Record<string, { condition: string }>;
  healthcheck?: { test: string[] };
}

/** Compose's interpolation: `${NAME}`, `${NAME:-default}`, `${NAME:?message}`, and `$$` for a literal `$`. */
function interpolate(text: string, env: Record<string, string>): string {
  return text.replace(/\$\$|\$\{([A-Z_][A-Z0-9_]*)(?::([-?])([^}]*))?\}/g, (whole, name?: string, kind?: string, operand?: string) => {
    if (whole === "$$") return "$";
    const value = env[name!];
    if (value !== undefined && value !== "") return value;
    if (kind === "?") throw new Error(`compose would refuse to start: ${operand}`);
    return kind === "-" ? operand! : "";
  });
}

/** Compose reads the YAML first, then interpolates each string value. */
function interpolateValues(value: unknown, env: Record<string, string>): unknown {
  if (typeof value === "string") return interpolate(value, env);
  if (Array.isArray(value)) return value.map((item) => interpolateValues(item, env));
  if (value !== null && typeof value === "object") {
    return Object.fromEntries(Object.entries(value).map(([key, item]) => [key, interpolateValues(item, env)]));
  }
  return value;
}

function loadCompose(env: Record<string, string>): Record<string, Service> {
  const document = parse(fs.readFileSync(COMPOSE_FILE, "utf8"), { merge: true }) as { services: unknown };
  return interpolateValues(document.services, env) as Record<string, Service>;
}

const SECRETS = {
  REDIS_PASSWORD: "compose-test-redis-password",
  KEYPOOL_TOKENS: "lease:compose-test-lease-token,admin:compose-test-admin-token",
  OPENAI_KEY: "sk-compose-test-0001,sk-compose-test-0002",
};

const services = loadCompose(SECRETS);
const keypools = Object.entries(services).filter(([, s]) => s.build !== undefined);
const [redisName, redis] = Object.entries(services).find(([, s]) => s.command?.[0] === "redis-server")!;

describe("deploy/replicas/compose.yaml", () => {
  it("refuses to start without the Redis password and the tokens", () => {
    expect(() => loadCompose({ KEYPOOL_TOKENS: SECRETS.KEYPOOL_TOKENS })).toThrow(/REDIS_PASSWORD/);
    expect(() => loadCompose({ REDIS_PASSWORD: SECRETS.REDIS_PASSWORD })).toThrow(/KEYPOOL_TOKENS/);
  });

  it("runs three keypool replicas built from the repository's Dockerfile, each waiting for a healthy Redis", () => {
    expect(keypools).toHaveLength(3);
    for (const [, keypool] of keypools) {
      expect(fs.existsSync(path.join(COMPOSE_DIR, keypool.build!.context, keypool.build!.dockerfile))).toBe(true);
      expect(keypool.depends_on).toEqual({ [redisName]: { condition: "service_healthy" } });
      expect(redis.healthcheck).toBeDefined();
    }
  });

  it("gives keypool only settings keypool knows", () => {
    const known = new Set(allSettings().map((s) => s.name));
    for (const [, keypool] of keypools) {
      expect(Object.keys(keypool.environment!).filter((name) => !known.has(name))).toEqual([]);
    }
  });

  it("publishes keypool on the host's loopback only, and Redis not at all", () => {
    const published = keypools.flatMap(([, s]) => s.ports ?? []);
    expect(published).toHaveLength(3);
    for (const port of published) expect(port).toMatch(/^127\.0\.0\.1:\d+:50051$/);
    expect(redis.ports).toBeUndefined();
  });

  it("tells Redis to fsync its append-only file before it answers, with a password", () => {
    const args = redis.command!.slice(1);
    const value = (flag: string) => args[args.indexOf(flag) + 1];
    expect(value("--appendonly")).toBe("yes");
    expect(value("--appendfsync")).toBe("always");
    expect(value("--requirepass")).toBe(SECRETS.REDIS_PASSWORD);
  });

  describe("run without containers", () => {
    let server: RedisServer;
    let replicas: Replicas;

    beforeAll(async () => {
      ensureBuilt();
      // The compose file's own arguments come last, so they win over the harness's defaults.
      server = await startRedisServer({ args: redis.command!.slice(1) });
      const state = keypools[0][1].environment!.KEYPOOL_STATE.replace(`@${redisName}:6379`, `@127.0.0.1:${server.port}`);
      const environment = { ...keypools[0][1].environment!, KEYPOOL_STATE: state };
      replicas = await startReplicas(server, 3, environment);
    }, 120_000);

    afterAll(async () => {
      await replicas?.close();
      await server?.close();
    });

    it("passes Redis's healthcheck and keeps the fsync policy", async () => {
      const [kind, command] = redis.healthcheck!.test;
      expect(kind).toBe("CMD-SHELL");
      const local = command.replace("redis-cli ", `redis-cli -p ${server.port} `);
      execFileSync("sh", ["-c", local], { env: { ...process.env, ...redis.environment }, stdio: "pipe" });
      const client = new Redis(server.port, "127.0.0.1", { password: SECRETS.REDIS_PASSWORD, lazyConnect: true });
      try {
        await client.connect();
        expect(await client.config("GET", "appendfsync")).toEqual(["appendfsync", "always"]);
      } finally {
        client.disconnect();
      }
    });

    it("serves one pool from every replica, behind the tokens", async () => {
      const clientOf = (url: string, token?: string) =>
        createGrpcTransport({
          baseUrl: url,
          interceptors: token ? [(next) => (req) => (req.header.set("authorization", `Bearer ${token}`), next(req))] : [],
        });
      const [first, second, third] = replicas.replicas.map((r) => r.server.url);
      await expect(createClient(KeyPoolService, clientOf(first)).lease({ model: "gpt-3.5-turbo" })).rejects.toMatchObject({ code: Code.Unauthenticated });
      const lease = await createClient(KeyPoolService, clientOf(first, "compose-test-lease-token")).lease({ model: "gpt-3.5-turbo" });
      expect(lease.keyHash).not.toBe("");
      for (const url of [second, third]) {
        const { keys } = await createClient(KeyPoolService, clientOf(url, "compose-test-admin-token")).listKeys({});
        expect(keys).toHaveLength(2);
        expect(keys.find((k) => k.keyHash === lease.keyHash)?.leaseCount).toBe(1n);
      }
    });
  });
});
