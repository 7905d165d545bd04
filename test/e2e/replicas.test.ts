/**
 * Three built keypool replicas on one private redis-server (docs/replicas.md): one pool whichever
 * replica answers. No key is granted twice within its hold however the Leases spread, a 429
 * reported to one replica is obeyed by all, a waiter on one is served by a report on another, a
 * dashboard on one sees admin changes made on another, and SIGKILL of a replica and of Redis
 * under load (appendfsync always) loses no acknowledged usage.
 */
import { Code, ConnectError } from "@connectrpc/connect";
import { KeyState } from "../../gen/ts/keypool/v1/keypool_pb";
import { RetryInfoSchema } from "../../gen/ts/google/rpc/error_details_pb";
import { ensureBuilt } from "../support/child-server";
import { startRedisServer, type RedisServer } from "../support/redis-server";
import { eventually, startReplicas, type Replica, type Replicas } from "../support/replicas";
import { StreamView } from "./watch-harness";

jest.setTimeout(120_000);

const MODEL = "gpt-3.5-turbo"; // family "turbo"
const KEYS = Array.from({ length: 6 }, (_, i) => `sk-replicas-test-key-${String(i).padStart(4, "0")}`);
const INPUT_PER_CALL = 7;
const OUTPUT_PER_CALL = 11;

const codeOf = async (call: Promise<unknown>): Promise<Code | "ok"> =>
  call.then(
    () => "ok" as const,
    (err: unknown) => ConnectError.from(err).code,
  );

beforeAll(() => ensureBuilt(), 180_000);

describe("three replicas, one pool", () => {
  let redis: RedisServer;
  let fleet: Replicas;
  let r: Replica[];

  beforeEach(async () => {
    redis = await startRedisServer();
    // A long reuse delay: a key leased once is held for the whole test unless a report frees it.
    fleet = await startReplicas(redis, 3, { OPENAI_KEY: KEYS.join(","), KEYPOOL_REUSE_DELAY: "5m" });
    r = fleet.replicas;
  });
  afterEach(async () => {
    await fleet.close();
    await redis.close();
  });

  it("three replicas starting at once on an empty Redis make one pool of the configured keys", async () => {
    for (const replica of r) {
      const { keys } = await replica.pool.listKeys({});
      expect(keys).toHaveLength(KEYS.length);
    }
    const hashes = (await r[0]!.pool.listKeys({})).keys.map((k) => k.keyHash);
    expect((await r[2]!.pool.listKeys({})).keys.map((k) => k.keyHash)).toEqual(hashes);
  });

  it("concurrent Leases spread over the replicas never grant a key twice within its hold", async () => {
    const grants = new Map<string, number>();
    const codes: (Code | "ok")[] = [];
    await Promise.all(
      Array.from({ length: 60 }, async (_, i) => {
        const replica = r[i % r.length]!;
        try {
          const lease = await replica.pool.lease({ model: MODEL });
          grants.set(lease.keyHash, (grants.get(lease.keyHash) ?? 0) + 1);
          codes.push("ok");
        } catch (err) {
          codes.push(ConnectError.from(err).code);
        }
      }),
    );
    // Every key once, and every other call refused: none handed out twice.
    expect([...grants.values()]).toEqual(KEYS.map(() => 1));
    expect(codes.filter((c) => c === "ok")).toHaveLength(KEYS.length);
    expect(codes.filter((c) => c === Code.ResourceExhausted)).toHaveLength(60 - KEYS.length);
    // The pool agrees: each key leased once, one lease in flight.
    const { keys } = await r[1]!.pool.listKeys({});
    expect(keys.map((k) => [k.leaseCount, k.inFlight])).toEqual(KEYS.map(() => [1n, 1]));
  });

  it("a 429 reported to one replica is obeyed by the others", async () => {
    const { keys } = await r[0]!.pool.listKeys({});
    for (const key of keys) {
      await r[0]!.pool.reportRateLimit({ keyHash: key.keyHash, statusCode: 429, headers: { "retry-after": "60" } });
    }
    for (const replica of [r[1]!, r[2]!]) {
      const err = await replica.pool.lease({ model: MODEL }).then(
        () => undefined,
        (e: unknown) => ConnectError.from(e),
      );
      expect(err?.code).toBe(Code.ResourceExhausted);
      const retry = err!.findDetails(RetryInfoSchema)[0];
      expect(Number(retry?.retryDelay?.seconds ?? 0)).toBeGreaterThanOrEqual(55);
      const { lockout } = await replica.pool.getLockoutPeriod({ model: MODEL });
      expect(Number(lockout?.seconds ?? 0)).toBeGreaterThanOrEqual(55);
    }
  });

  it("a Lease waiting on one replica is served by a report made through another", async () => {
    // Take every key: the pool is empty for five minutes.
    const leases = await Promise.all(KEYS.map(() => r[0]!.pool.lease({ model: MODEL })));
    const started = Date.now();
    const waiting = r[1]!.pool.lease({ model: MODEL, maxWait: { seconds: 20n, nanos: 0 } });
    // Give the waiter time to queue, then free one key through the third replica: a successful
    // answer whose headers say the key has room ends its hold.
    await new Promise((resolve) => setTimeout(resolve, 500));
    const freed = leases[3]!;
    await r[2]!.pool.reportRateLimit({
      keyHash: freed.keyHash,
      statusCode: 200,
      headers: { "x-ratelimit-remaining-requests": "10", "x-ratelimit-reset-requests": "1s" },
    });
    const served = await waiting;
    expect(served.keyHash).toBe(freed.keyHash);
    expect(Date.now() - started).toBeLessThan(10_000);
  });

  it("a dashboard on one replica sees admin changes made through another, after its snapshot", async () => {
    const view = new StreamView();
    const controller = new AbortController();
    const done = view.consume(r[0]!.pool.watchKeys({}, { signal: controller.signal }));
    await view.until(() => view.synced);
    expect(view.keys.size).toBe(KEYS.length);
    const target = [...view.keys.keys()][2]!;

    await r[2]!.admin.disableKey({ keyHash: target, reason: "rotated by the operator" });
    await view.until(() => view.keys.get(target)?.state === KeyState.DISABLED);
    expect(view.keys.get(target)!.stateReason).toBe("rotated by the operator");

    const added = await r[1]!.admin.addKeys({ provider: 1, keys: [{ key: "sk-replicas-test-added-9999" }] });
    await view.until(() => view.keys.has(added.keyHashes[0]!));

    await r[2]!.admin.removeKey({ keyHash: added.keyHashes[0]! });
    await view.until(() => !view.keys.has(added.keyHashes[0]!));
    expect(view.violations).toEqual([]);
    expect(view.sequences).toEqual(view.sequences.map((_, i) => BigInt(i + 1)));
    // What the stream shows is what any replica lists.
    const listed = await r[1]!.pool.listKeys({});
    expect(new Map(listed.keys.map((k) => [k.keyHash, k.state]))).toEqual(new Map([...view.keys].map(([h, k]) => [h, k.state])));
    controller.abort();
    await done;
  });
});

describe("SIGKILL under load", () => {
  let redis: RedisServer;
  let fleet: Replicas;

  beforeAll(async () => {
    redis = await startRedisServer({ appendfsync: "always" });
    fleet = await startReplicas(redis, 3, { OPENAI_KEY: KEYS.join(","), KEYPOOL_REUSE_DELAY: "0" });
  });
  afterAll(async () => {
    await fleet.close();
    await redis.close();
  });

  /** IncrementUsage from `lanes` concurrent callers over the live replicas until `stopAfter` says stop. */
  async function load(replicas: Replica[], hashes: string[], lanes: number, stopAfter: (acked: number, failed: number) => boolean) {
    let acked = 0;
    let failed = 0;
    let sent = 0;
    let stop = false;
    await Promise.all(
      Array.from({ length: lanes }, async (_, lane) => {
        let n = lane;
        while (!stop) {
          const replica = replicas[n % replicas.length]!;
          const keyHash = hashes[n++ % hashes.length]!;
          sent++;
          const code = await codeOf(replica.pool.incrementUsage({ keyHash, model: MODEL, inputTokens: BigInt(INPUT_PER_CALL), outputTokens: BigInt(OUTPUT_PER_CALL) }, { timeoutMs: 3000 }));
          if (code === "ok") acked++;
          else failed++;
          if (stopAfter(acked, failed)) stop = true;
          if (code !== "ok") await new Promise((resolve) => setTimeout(resolve, 20));
        }
      }),
    );
    return { acked, sent };
  }

  async function totalPrompts(replica: Replica): Promise<{ prompts: number; input: number; output: number }> {
    const { keys } = await replica.pool.listKeys({});
    let prompts = 0;
    let input = 0;
    let output = 0;
    for (const key of keys) {
      const usage = key.usage["turbo"];
      prompts += Number(usage?.prompts ?? 0);
      input += Number(usage?.inputTokens ?? 0);
      output += Number(usage?.outputTokens ?? 0);
    }
    return { prompts, input, output };
  }

  it("loses no acknowledged usage when a replica, and then Redis, is killed mid-load", async () => {
    const [a, b, c] = fleet.replicas as [Replica, Replica, Replica];
    const hashes = (await a.pool.listKeys({})).keys.map((k) => k.keyHash);

    // Phase 1: replica b is killed while calls to it are in flight; the others go on.
    let killedB: Promise<unknown> | undefined;
    const first = await load([a, b, c], hashes, 30, (acked) => {
      if (acked >= 300 && !killedB) killedB = b.server.stop("SIGKILL");
      return acked >= 900;
    });
    await killedB;
    // Calls to b were in flight when it died: the kill happened under load.
    expect(first.sent).toBeGreaterThan(first.acked);
    const afterReplica = await totalPrompts(a);
    expect(afterReplica.prompts).toBeGreaterThanOrEqual(first.acked);
    expect(afterReplica.prompts).toBeLessThanOrEqual(first.sent);
    // Never a torn call: each one counts both token kinds or neither.
    expect(afterReplica.input).toBe(afterReplica.prompts * INPUT_PER_CALL);
    expect(afterReplica.output).toBe(afterReplica.prompts * OUTPUT_PER_CALL);

    // Phase 2: Redis is killed (SIGKILL) under load and started again on its append-only file.
    let killedRedis: Promise<void> | undefined;
    // The load goes on until calls fail: the kill lands while calls are in flight.
    const second = await load([a, c], hashes, 30, (acked, failed) => {
      if (acked >= 300 && !killedRedis) killedRedis = redis.stop("SIGKILL");
      return Boolean(killedRedis) && failed > 0;
    });
    await killedRedis;
    expect(second.sent).toBeGreaterThan(second.acked);
    await redis.start();
    for (const replica of [a, c]) {
      await eventually(async () => (await codeOf(replica.pool.listKeys({}))) === "ok", "the replicas to serve again after Redis restarted", 15_000);
    }
    const afterRedis = await totalPrompts(a);
    expect(afterRedis.prompts).toBeGreaterThanOrEqual(first.acked + second.acked);
    expect(afterRedis.prompts).toBeLessThanOrEqual(first.sent + second.sent);
    expect(afterRedis.input).toBe(afterRedis.prompts * INPUT_PER_CALL);
    expect(await totalPrompts(c)).toEqual(afterRedis);
  });
});
