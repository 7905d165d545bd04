/**
 * Several replicas of the pool kept in Redis (src/redis) on one private redis-server: one pool
 * whichever replica answers. The replicas share a ManualClock that the scripts read too
 * (scriptTimeFromClock), so holds and lease expiry move only when a test says so; the change
 * stream and the Redis calls are real.
 */
import { createHash } from "node:crypto";
import Redis from "ioredis";
import { ManualClock } from "../../../src/domain/clock";
import { ErrorCode, PoolError } from "../../../src/domain/errors";
import { hashKey, type KeyHasher } from "../../../src/domain/key-hash";
import type { KeySpec, PoolEvent } from "../../../src/domain/types";
import { RedisPool, type RedisPoolOptions } from "../../../src/redis/redis-pool";
import { startRedisServer, type RedisServer } from "../../support/redis-server";

const REUSE = 60_000;
const TTL = 120_000;
const secret = (n: number) => `sk-replica-test-${String(n).padStart(4, "0")}-abcdefghijklmnop`;
const spec = (n: number, extra: Partial<KeySpec> = {}): KeySpec => ({ provider: "openai", key: secret(n), modelFamilies: ["gpt4"], ...extra });
const hashOf = (n: number) => hashKey("openai", secret(n), "");

let server: RedisServer;
let redis: Redis;
let open: RedisPool[] = [];
let prefixSeq = 0;
let prefix = "";

beforeAll(async () => {
  server = await startRedisServer();
  redis = new Redis(server.url);
}, 30_000);

afterAll(async () => {
  redis.disconnect();
  await server.close();
});

beforeEach(() => {
  // Each test its own pool in the shared Redis: pools with different prefixes never meet.
  prefix = `replicas-${++prefixSeq}`;
});

afterEach(async () => {
  await Promise.all(open.map((p) => p.close()));
  open = [];
});

async function replica(clock: ManualClock, options: Partial<RedisPoolOptions> = {}): Promise<RedisPool> {
  const pool = await RedisPool.open({
    redis,
    prefix,
    clock,
    tunables: { reuseDelayMs: REUSE, leaseTtlMs: TTL },
    scriptTimeFromClock: true,
    ...options,
  });
  open.push(pool);
  return pool;
}

/** Resolves when `feed` has published an event that `match` accepts. */
function nextEvent(pool: RedisPool, match: (e: PoolEvent) => boolean): Promise<PoolEvent> {
  return new Promise((resolve) => {
    const stop = pool.changes.subscribe((e) => {
      if (match(e)) {
        stop();
        resolve(e);
      }
    });
  });
}

describe("replicas on one Redis", () => {
  it("two replicas starting at once on an empty Redis make one pool", async () => {
    const clock = new ManualClock();
    const configured = Array.from({ length: 40 }, (_, i) => spec(i));
    const [a, b] = await Promise.all([replica(clock, { configured }), replica(clock, { configured })]);
    const listed = (await a.listKeys()).map((s) => s.keyHash);
    expect(listed).toHaveLength(40);
    expect(new Set(listed)).toEqual(new Set(configured.map((_, i) => hashOf(i))));
    expect((await b.listKeys()).map((s) => s.keyHash)).toEqual(listed);
    // One stream: each key was added once, not once per replica.
    const entries = await redis.xrange(`{${prefix}}:changes`, "-", "+");
    const added = entries.flatMap(([, f]) => JSON.parse(f[3]!) as unknown[][]).filter((e) => e[1] === "added");
    expect(added).toHaveLength(40);
  });

  it("a replica joining a populated Redis keeps learned state, adds missing configured keys and leaves removed ones out", async () => {
    const clock = new ManualClock();
    const first = await replica(clock, { configured: [spec(1), spec(2)] });
    const lease = await first.lease({ model: "gpt-4" });
    await first.incrementUsage({ keyHash: lease.keyHash, model: "gpt-4", inputTokens: 11, outputTokens: 22, leaseId: lease.leaseId });
    await first.reportRateLimit({ keyHash: lease.keyHash, statusCode: 429, headers: { "retry-after": "30" } });
    await first.removeKey(hashOf(2));
    await first.close();

    const joined = await replica(clock, { configured: [spec(1), spec(2), spec(3, { modelFamilies: ["gpt4", "turbo"] })] });
    const keys = await joined.listKeys();
    expect(keys.map((k) => k.keyHash).sort()).toEqual([hashOf(1), hashOf(3)].sort());
    const learned = keys.find((k) => k.keyHash === lease.keyHash)!;
    expect(learned).toMatchObject({ promptCount: 1, leaseCount: 1, inFlight: 0, cooldownUntil: clock.now() + 30_000 });
    expect(learned.usage).toEqual({ gpt4: { inputTokens: 11, outputTokens: 22, prompts: 1 } });
    expect(keys.find((k) => k.keyHash === hashOf(3))!.modelFamilies).toEqual(["gpt4", "turbo"]);
  });

  it("concurrent leases over two replicas never hand out one key twice within its hold", async () => {
    const clock = new ManualClock();
    const a = await replica(clock, { configured: Array.from({ length: 5 }, (_, i) => spec(i)) });
    const b = await replica(clock);
    const calls = Array.from({ length: 40 }, (_, i) => (i % 2 ? a : b).lease({ model: "gpt-4" }).then((l) => l.keyHash, (e: PoolError) => e.code));
    const results = await Promise.all(calls);
    const granted = results.filter((r) => typeof r === "string");
    expect(granted).toHaveLength(5);
    expect(new Set(granted).size).toBe(5);
    expect(results.filter((r) => r === ErrorCode.ResourceExhausted)).toHaveLength(35);
  });

  it("a waiter on one replica is served by a report made on another", async () => {
    const clock = new ManualClock();
    const a = await replica(clock, { configured: [spec(1)] });
    const b = await replica(clock);
    const first = await a.lease({ model: "gpt-4" });
    const waiting = b.leaseWhenReady({ model: "gpt-4", maxWaitMs: 30_000 });
    // The key's hold is the reuse delay (60 s); a 200 whose remaining counts are all above 0 ends it.
    await a.reportRateLimit({ keyHash: first.keyHash, statusCode: 200, headers: { "x-ratelimit-remaining-requests": "5" } });
    const served = await waiting;
    expect(served.keyHash).toBe(first.keyHash);
    expect(served.leaseId).not.toBe(first.leaseId);
    expect(b.waitingLeases).toBe(0);
  });

  it("a waiter is served when the hold simply runs out, by its replica's timer, first come first served", async () => {
    const clock = new ManualClock();
    const a = await replica(clock, { configured: [spec(1)] });
    await a.lease({ model: "gpt-4" });
    await a.catchUp();
    const timers = clock.pendingTimers();
    const order: string[] = [];
    const w1 = a.leaseWhenReady({ model: "gpt-4", maxWaitMs: 200_000 }).then((l) => (order.push("first"), l));
    const w2 = a.leaseWhenReady({ model: "gpt-4", maxWaitMs: 200_000 }).then((l) => (order.push("second"), l));
    // Two deadlines and the replica's one wake-up timer, set from the lockout its attempt found.
    await waitUntil(() => clock.pendingTimers() === timers + 3);
    clock.advance(REUSE);
    await w1;
    expect(order).toEqual(["first"]);
    // The second waiter tried the key just leased to the first, and set the timer again.
    await waitUntil(() => clock.pendingTimers() === timers + 2);
    clock.advance(REUSE);
    await w2;
    expect(order).toEqual(["first", "second"]);
  });

  it("a waiter whose deadline passes gets RESOURCE_EXHAUSTED with the lockout, and a cancelled one leaves at once", async () => {
    const clock = new ManualClock();
    const a = await replica(clock, { configured: [spec(1)] });
    await a.lease({ model: "gpt-4" });
    const controller = new AbortController();
    const cancelled = a.leaseWhenReady({ model: "gpt-4", maxWaitMs: 50_000, signal: controller.signal }).catch((e: PoolError) => e);
    const late = a.leaseWhenReady({ model: "gpt-4", maxWaitMs: 10_000 }).catch((e: PoolError) => e);
    await waitUntil(() => a.waitingLeases === 2);
    controller.abort();
    expect(((await cancelled) as PoolError).code).toBe(ErrorCode.Cancelled);
    expect(a.waitingLeases).toBe(1);
    clock.advance(10_000);
    const error = (await late) as PoolError;
    expect(error.code).toBe(ErrorCode.ResourceExhausted);
    expect(error.retryAfterMs).toBe(REUSE - 10_000);
  });

  it("waiters fail at once when another replica takes away the family's last key, and a replica's queue is bounded", async () => {
    const clock = new ManualClock();
    const a = await replica(clock, { configured: [spec(1)] });
    const b = await replica(clock, { tunables: { reuseDelayMs: REUSE, leaseTtlMs: TTL, maxWaitersPerFamily: 1 } });
    await a.lease({ model: "gpt-4" });
    const waiting = b.leaseWhenReady({ model: "gpt-4", maxWaitMs: 100_000 }).catch((e: PoolError) => e);
    await waitUntil(() => b.waitingLeases === 1);
    await expect(b.leaseWhenReady({ model: "gpt-4", maxWaitMs: 100_000 })).rejects.toMatchObject({
      code: ErrorCode.ResourceExhausted,
      retryAfterMs: REUSE,
    });
    await a.disableKey(hashOf(1));
    expect(((await waiting) as PoolError).code).toBe(ErrorCode.FailedPrecondition);
    expect(b.waitingLeases).toBe(0);
  });

  it("an admin change made through one replica is seen by the next call to another, and by its change feed", async () => {
    const clock = new ManualClock();
    const a = await replica(clock, { configured: [spec(1), spec(2)] });
    const b = await replica(clock);
    const seen = nextEvent(b, (e) => e.type === "updated" && e.cause === "disabled");
    await a.disableKey(hashOf(1), "revoked", "leaked in a log");
    const listed = await b.listKeys();
    expect(listed.find((k) => k.keyHash === hashOf(1))).toMatchObject({ state: "revoked", stateReason: "leaked in a log" });
    expect(await seen).toMatchObject({ key: { keyHash: hashOf(1), state: "revoked" } });
    await a.removeKey(hashOf(2));
    expect((await b.listKeys()).map((k) => k.keyHash)).toEqual([hashOf(1)]);
    expect(b.mirror.getKey(hashOf(2))).toBeUndefined();
    await expect(b.enableKey(hashOf(2))).rejects.toMatchObject({ code: ErrorCode.NotFound });
  });

  it("a replica starting while another changes the pool misses nothing and reorders nothing", async () => {
    const clock = new ManualClock();
    const a = await replica(clock, { configured: Array.from({ length: 30 }, (_, i) => spec(i)), tunables: { reuseDelayMs: 0, leaseTtlMs: TTL } });
    let stop = false;
    const busy = (async () => {
      let n = 0;
      while (!stop || n < 200) {
        await a.lease({ model: "gpt-4" });
        n++;
      }
    })();
    const b = await replica(clock);
    const counts = new Map<string, number>();
    let reordered = 0;
    b.changes.subscribe((e) => {
      if (e.type !== "updated") return;
      const status = e.key.status();
      const last = counts.get(status.keyHash) ?? -1;
      if (status.leaseCount < last) reordered++;
      counts.set(status.keyHash, status.leaseCount);
    });
    stop = true;
    await busy;
    await b.catchUp();
    expect(reordered).toBe(0);
    expect(b.mirror.listKeys()).toEqual(await a.listKeys());
    expect((await a.listKeys()).reduce((sum, k) => sum + k.leaseCount, 0)).toBeGreaterThanOrEqual(200);
  });

  it("a lease expires once, whichever replicas end it", async () => {
    const clock = new ManualClock();
    const a = await replica(clock, { configured: [spec(1)] });
    const b = await replica(clock);
    const ended: PoolEvent[] = [];
    b.changes.subscribe((e) => e.type === "updated" && e.cause === "lease_ended" && ended.push(e));
    await a.lease({ model: "gpt-4" });
    clock.advance(TTL);
    await Promise.all([a.catchUp(), b.catchUp(), a.catchUp(), b.catchUp()]);
    expect((await a.listKeys())[0]!.inFlight).toBe(0);
    await b.catchUp();
    expect(ended).toHaveLength(1);
  });

  it("usage adds up exactly over replicas, and ends the lease it names only once", async () => {
    const clock = new ManualClock();
    const a = await replica(clock, { configured: [spec(1)] });
    const b = await replica(clock);
    const lease = await a.lease({ model: "gpt-4" });
    await Promise.all(
      Array.from({ length: 30 }, (_, i) =>
        (i % 2 ? a : b).incrementUsage({ keyHash: lease.keyHash, model: "gpt-4", inputTokens: 10, outputTokens: 1, leaseId: lease.leaseId }),
      ),
    );
    const [key] = await b.listKeys();
    expect(key).toMatchObject({ promptCount: 30, inFlight: 0, usage: { gpt4: { inputTokens: 300, outputTokens: 30, prompts: 30 } } });
  });

  it("the key checker's findings and RecheckKeys go through scripts: clones added, a finding dropped after an operator's action", async () => {
    const clock = new ManualClock();
    const a = await replica(clock, { configured: [{ provider: "openai", key: secret(1) }] });
    const b = await replica(clock);
    const subject = (await a.checkSubject(hashOf(1)))!;
    expect(subject).toMatchObject({ keyHash: hashOf(1), secret: secret(1), firstCheck: true, familiesPinned: false });
    const result = await a.applyFinding(subject, { state: "active", modelFamilies: ["gpt4o", "turbo"], organizationId: "org-a", cloneOrganizations: ["org-b"] });
    const cloneHash = hashKey("openai", secret(1), "org-b");
    expect(result).toEqual({ applied: true, clones: [cloneHash] });
    const keys = await b.listKeys();
    expect(keys.find((k) => k.keyHash === hashOf(1))).toMatchObject({ organizationId: "org-a", modelFamilies: ["gpt4o", "turbo"], lastChecked: clock.now() });
    expect(keys.find((k) => k.keyHash === cloneHash)).toMatchObject({ organizationId: "org-b", modelFamilies: ["gpt4o", "turbo"] });

    const again = (await b.checkSubject(hashOf(1)))!;
    expect(again.firstCheck).toBe(false);
    await a.enableKey(hashOf(1)); // an operator's action after the check began
    expect(await b.applyFinding(again, { state: "revoked" })).toEqual({ applied: false, why: "operator_changed" });
    expect(await b.markForCheck([hashOf(1)])).toBe(1);
    expect((await a.listKeys()).find((k) => k.keyHash === hashOf(1))!.lastChecked).toBe(0);
    await expect(a.markForCheck(["oai-0000000000000000"])).rejects.toMatchObject({ code: ErrorCode.NotFound });
  });

  it("a replica joining a pool of several snapshot pages and merge batches sees every key as the first does, and a hash collision stops its start", async () => {
    const clock = new ManualClock();
    const configured = Array.from({ length: 4_500 }, (_, i) => spec(i));
    const first = await replica(clock, { configured });
    await first.disableKey(hashOf(4_499), "disabled", "an operator's reason, with \"quotes\" and ünïcode");
    await first.incrementUsage({ keyHash: hashOf(2_001), model: "gpt-4", inputTokens: 5, outputTokens: 7 });

    // The same keys again, one of them now with the configuration's families: kept state, new families.
    const again = configured.map((s, i) => (i === 3_000 ? spec(i, { modelFamilies: ["turbo"] }) : s));
    const joined = await replica(clock, { configured: again });
    expect(joined.size).toBe(4_500);
    const expected = (await first.listKeys()).map((k) => (k.keyHash === hashOf(3_000) ? { ...k, modelFamilies: ["turbo"] } : k));
    expect(await joined.listKeys()).toEqual(expected);
    expect(joined.getKey(hashOf(4_499))).toMatchObject({ state: "disabled", stateReason: "an operator's reason, with \"quotes\" and ünïcode" });
    expect(joined.getKey(hashOf(2_001))!.usage).toEqual({ gpt4: { inputTokens: 5, outputTokens: 7, prompts: 1 } });
    expect(await first.addKeys([spec(7), spec(4_500)])).toMatchObject({ added: 1, duplicates: 1 });

    // A key whose hash is another key's in Redis: the start fails naming its place in the configuration.
    const stranger = "sk-replica-test-stranger-abcdefghijklmnopq";
    const keyHasher: KeyHasher = (provider, key, org) => (key === stranger ? hashOf(10) : hashKey(provider, key, org));
    const clash = [...configured.slice(100, 2_600), { provider: "openai" as const, key: stranger, modelFamilies: ["gpt4"] }];
    await expect(replica(clock, { configured: clash, tunables: { reuseDelayMs: REUSE, leaseTtlMs: TTL, keyHasher } })).rejects.toThrow(
      `keys[2500]: its key hash ${hashOf(10)} already belongs to a different key`,
    );
  }, 60_000);

  it("a replica joining with configured keys the pool already holds sends only those its configuration changes", async () => {
    const clock = new ManualClock();
    const configured = Array.from({ length: 40 }, (_, i) => spec(i));
    const first = await replica(clock, { configured });
    /** Scripts Redis ran while `open` ran (INFO commandstats). */
    const scriptsRunBy = async (open: () => Promise<RedisPool>) => {
      await redis.config("RESETSTAT");
      await open();
      const info = await redis.info("commandstats");
      return [...info.matchAll(/^cmdstat_eval(?:sha)?:calls=(\d+)/gm)].reduce((sum, m) => sum + Number(m[1]), 0);
    };
    const joiningWithNone = await scriptsRunBy(() => replica(clock));
    expect(await scriptsRunBy(() => replica(clock, { configured }))).toBe(joiningWithNone);
    const changed = configured.map((s, i) => (i === 5 ? spec(5, { modelFamilies: ["turbo"] }) : s));
    expect(await scriptsRunBy(() => replica(clock, { configured: changed }))).toBe(joiningWithNone + 1);
    await first.catchUp();
    expect(first.getKey(hashOf(5))!.modelFamilies).toEqual(["turbo"]);
  });

  it("converts a pool written before statuses were packed (layout 1) at the first start, and a newer layout stops the start naming KEYPOOL_STATE", async () => {
    const clock = new ManualClock();
    const first = await replica(clock, { configured: Array.from({ length: 2_500 }, (_, i) => spec(i)) });
    await first.disableKey(hashOf(7), "disabled", "a reason, with \"quotes\"");
    await first.incrementUsage({ keyHash: hashOf(2_400), model: "gpt-4", inputTokens: 3, outputTokens: 4 });
    await first.reportRateLimit({ keyHash: hashOf(9), statusCode: 429, headers: { "retry-after": "30" } });
    const expected = await first.listKeys();
    // What the build before kept: the same hash per key without a fingerprint, no packed
    // statuses beside them, no layout.
    const old = redis.pipeline();
    for (const status of expected) old.hdel(`{${prefix}}:key:${status.keyHash}`, "kf");
    await old.exec();
    await redis.del(`{${prefix}}:status`, `{${prefix}}:layout`);
    const converted = await replica(clock);
    expect(await converted.listKeys()).toEqual(expected);
    expect(await redis.get(`{${prefix}}:layout`)).toBe("2");
    expect(await redis.hlen(`{${prefix}}:status`)).toBe(2_500);
    expect(await redis.hget(`{${prefix}}:key:${hashOf(7)}`, "kf")).toBe(createHash("sha1").update(secret(7)).digest("hex").slice(0, 16));
    // A key whose packed status is missing is packed by the snapshot itself.
    await redis.hdel(`{${prefix}}:status`, hashOf(9));
    expect(await (await replica(clock)).listKeys()).toEqual(expected);

    await redis.set(`{${prefix}}:layout`, "3");
    await expect(replica(clock)).rejects.toThrow(`KEYPOOL_STATE: the pool {${prefix}} in Redis has layout 3, which this keypool (layout 2) cannot read`);
  }, 30_000);

  it("keeps every key of a pool under its one hash tag, and no secret in the change stream", async () => {
    const clock = new ManualClock();
    const a = await replica(clock, { configured: [spec(1), spec(2)] });
    const lease = await a.lease({ model: "gpt-4" });
    await a.incrementUsage({ keyHash: lease.keyHash, model: "gpt-4", inputTokens: 1, outputTokens: 1 });
    await a.disableKey(hashOf(2));
    const names = await redis.keys(`*${prefix}*`);
    expect(names.length).toBeGreaterThan(3);
    for (const name of names) expect(name.startsWith(`{${prefix}}:`)).toBe(true);
    const stream = JSON.stringify(await redis.xrange(`{${prefix}}:changes`, "-", "+"));
    expect(stream).toContain(hashOf(1));
    expect(stream).not.toContain(secret(1));
    expect(stream).not.toContain(secret(2));
  });

  it("a replica that missed changes the stream no longer holds reloads the pool and publishes what changed", async () => {
    const clock = new ManualClock();
    const a = await replica(clock, { configured: [spec(1), spec(2)] });
    const behind = await replica(clock);
    // The follower of `behind` is made to miss entries: they are appended and trimmed away
    // while it is not reading (its connection paused), as when a replica is away too long.
    const reader = (behind as unknown as { reader: Redis }).reader;
    reader.disconnect();
    // Closed for good first: a read still blocked in Redis could otherwise take the next entry.
    await waitUntil(() => reader.status === "end");
    await a.disableKey(hashOf(1));
    await a.removeKey(hashOf(2));
    await redis.xtrim(`{${prefix}}:changes`, "MAXLEN", 0);
    const events: PoolEvent[] = [];
    behind.changes.subscribe((e) => events.push(e));
    await a.lease({ model: "gpt-4" }).catch(() => undefined);
    await a.addKeys([spec(3)]);
    await reader.connect();
    await behind.catchUp();
    expect((await behind.listKeys()).map((k) => [k.keyHash, k.state])).toEqual(
      [[hashOf(1), "disabled"], [hashOf(3), "active"]].sort((x, y) => (x[0]! < y[0]! ? -1 : 1)),
    );
    expect(events.some((e) => e.type === "removed" && e.keyHash === hashOf(2))).toBe(true);
    expect(events.some((e) => e.type === "updated" && e.key.keyHash === hashOf(1) && e.key.state === "disabled")).toBe(true);
  });
});

describe("time", () => {
  it("comes from Redis TIME, so replicas whose clocks disagree agree on ready_at", async () => {
    // Each replica's own clock is a day off the other's; production never sets scriptTimeFromClock.
    const early = new ManualClock(Date.now() - 86_400_000);
    const late = new ManualClock(Date.now() + 86_400_000);
    const a = await replica(early, { configured: [spec(1)], scriptTimeFromClock: false });
    const b = await replica(late, { scriptTimeFromClock: false });
    const before = Date.now();
    const lease = await a.lease({ model: "gpt-4" });
    const after = Date.now();
    // The hold began at Redis's now, which is this machine's: neither replica's clock.
    const [status] = await b.listKeys();
    expect(status!.lastUsed).toBeGreaterThanOrEqual(before - 1000);
    expect(status!.lastUsed).toBeLessThanOrEqual(after + 1000);
    expect(lease.leaseExpiresAt).toBe(status!.lastUsed + TTL);
    // Held for the reuse delay on every replica, whatever its clock says.
    await expect(b.lease({ model: "gpt-4" })).rejects.toMatchObject({ code: ErrorCode.ResourceExhausted });
    const { lockoutMs } = await b.lockout({ model: "gpt-4" });
    expect(lockoutMs).toBeGreaterThan(REUSE - 5000);
    expect(lockoutMs).toBeLessThanOrEqual(REUSE);
  });
});

describe("Redis unreachable", () => {
  it("answers UNAVAILABLE, naming no secret, and works again when Redis is back", async () => {
    const own = await startRedisServer();
    const client = new Redis(own.url, { maxRetriesPerRequest: 0, enableOfflineQueue: false, commandTimeout: 1000 });
    await waitUntil(() => client.status === "ready");
    const clock = new ManualClock();
    const pool = await RedisPool.open({ redis: client, prefix, clock, scriptTimeFromClock: true, configured: [spec(1)] });
    try {
      await own.stop("SIGKILL");
      const error = (await pool.lease({ model: "gpt-4" }).catch((e: unknown) => e)) as PoolError;
      expect(error).toBeInstanceOf(PoolError);
      expect(error.code).toBe(ErrorCode.Unavailable);
      expect(error.message).not.toContain(secret(1));
      await own.start();
      await waitUntil(() => client.status === "ready", 10_000);
      // Redis came back empty (no persistence in this test): the pool answers from what it has.
      await expect(pool.lease({ model: "gpt-4" })).rejects.toMatchObject({ code: ErrorCode.FailedPrecondition });
    } finally {
      await pool.close();
      client.disconnect();
      await own.close();
    }
  }, 30_000);
});

/** Polls a condition on real time: for Redis round trips, which the ManualClock does not drive. */
async function waitUntil(condition: () => boolean, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error("condition not met in time");
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}
