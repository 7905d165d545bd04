/**
 * The key checker end to end: the built server as operators run it, keys of every kind from the
 * environment, checked against the fake upstream over real sockets; findings read back through
 * ListKeys and WatchKeys; Lease of a model only the check discovered; RecheckKeys; SIGTERM while
 * checks hang on a slow upstream.
 */
import { createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { timestampMs } from "@bufbuild/protobuf/wkt";
import {
  KeyAdminService,
  KeyPoolService,
  KeyState,
  type KeyStatus,
} from "../../gen/ts/keypool/v1/keypool_pb";
import { hashKey } from "../../src/domain/key-hash";
import { MULTI_ORG } from "../../src/fake-upstream/behaviours";
import { FakeUpstream } from "../../src/fake-upstream/fake-upstream";
import { ensureBuilt, runServerExpectingFailure, spawnServer, type ChildServer } from "../support/child-server";
import { fakeUpstreamEnv } from "../support/checker-safety";

jest.setTimeout(60_000);

const OPENAI = ["working", "revoked", "over-quota", "trial", "multi-org", "32k-quirk", "terminated", "5xx", "refused", "slow"];
const ANTHROPIC = ["working", "revoked", "over-quota"];
const oai = (b: string) => hashKey("openai", `sk-fake-${b}-1`, "");
const ant = (b: string) => hashKey("anthropic", `sk-ant-fake-${b}-1`, "");
const clone = (org: string) => hashKey("openai", "sk-fake-multi-org-1", org);
/** Keys whose check proves nothing: they stay unchecked (tried again after a minute). */
const UNCHECKABLE = new Set(["5xx", "refused", "slow"].map(oai));

let fake: FakeUpstream;
let server: ChildServer;
let pool: ReturnType<typeof createClient<typeof KeyPoolService>>;
let admin: ReturnType<typeof createClient<typeof KeyAdminService>>;
/** Every key's latest status as WatchKeys told it. */
const watched = new Map<string, KeyStatus>();
const watchAbort = new AbortController();
let watchDone: Promise<void>;

function checkerEnv(fakeUrl: string, extra: Record<string, string> = {}): Record<string, string> {
  return {
    KEYPOOL_CHECK_KEYS: "true",
    ...fakeUpstreamEnv(fakeUrl),
    KEYPOOL_CHECK_TIMEOUT: "5s",
    KEYPOOL_CHECK_CONCURRENCY: "3",
    ...extra,
  };
}

async function eventually(what: string, condition: () => Promise<boolean> | boolean, timeoutMs = 45_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}:\n${server?.output().stdout.slice(-3000)}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

async function listed(): Promise<Map<string, KeyStatus>> {
  const { keys } = await pool.listKeys({});
  return new Map(keys.map((k) => [k.keyHash, k]));
}

beforeAll(async () => {
  ensureBuilt();
  // Answers take a moment, so that WatchKeys is open before the first finding.
  fake = await FakeUpstream.start({ latencyMs: 200, slowMs: 30_000 });
  server = await spawnServer(
    checkerEnv(fake.url, {
      OPENAI_KEY: OPENAI.map((b) => `sk-fake-${b}-1`).join(","),
      ANTHROPIC_KEY: ANTHROPIC.map((b) => `sk-ant-fake-${b}-1`).join(","),
    }),
  );
  const transport = createGrpcTransport({ baseUrl: server.url });
  pool = createClient(KeyPoolService, transport);
  admin = createClient(KeyAdminService, transport);
  watchDone = (async () => {
    try {
      for await (const message of pool.watchKeys({}, { signal: watchAbort.signal })) {
        const event = message.event;
        if (event.case === "snapshot") for (const k of event.value.keys) watched.set(k.keyHash, k);
        if (event.case === "updated") watched.set(event.value.keyHash, event.value);
        if (event.case === "removedKeyHash") watched.delete(event.value);
      }
    } catch {
      // aborted at the end
    }
  })();
}, 120_000);

afterAll(async () => {
  watchAbort.abort();
  await watchDone;
  await server?.stop();
  await fake?.close();
});

describe("keys of every kind, checked against the fake upstream", () => {
  let keys: Map<string, KeyStatus>;

  beforeAll(async () => {
    await eventually("every checkable key checked, clones included", async () => {
      keys = await listed();
      const checkable = [...keys.values()].filter((k) => !UNCHECKABLE.has(k.keyHash));
      return keys.size === OPENAI.length + ANTHROPIC.length + 2 && checkable.every((k) => k.lastChecked !== undefined);
    });
  });

  it("a working key: ACTIVE, its models' families, no trial, bound to its organization, last_checked set", () => {
    const k = keys.get(oai("working"))!;
    expect(k).toMatchObject({
      state: KeyState.ACTIVE,
      modelFamilies: ["turbo", "gpt4", "gpt4o", "o3-mini", "dall-e"],
      trial: false,
      organizationId: "org-fake-only",
    });
    expect(Math.abs(timestampMs(k.lastChecked!) - Date.now())).toBeLessThan(60_000);
  });

  it("revoked, terminated: REVOKED; over quota: OVER_QUOTA; each with its reason", () => {
    expect(keys.get(oai("revoked"))).toMatchObject({ state: KeyState.REVOKED, stateReason: expect.stringMatching(/401/) });
    expect(keys.get(oai("terminated"))).toMatchObject({ state: KeyState.REVOKED, stateReason: expect.stringMatching(/access_terminated/) });
    expect(keys.get(oai("over-quota"))).toMatchObject({ state: KeyState.OVER_QUOTA, stateReason: expect.stringMatching(/insufficient_quota/) });
    expect(keys.get(ant("revoked"))).toMatchObject({ state: KeyState.REVOKED });
    expect(keys.get(ant("over-quota"))).toMatchObject({ state: KeyState.OVER_QUOTA, stateReason: expect.stringMatching(/credit balance/) });
    expect(keys.get(ant("working"))).toMatchObject({ state: KeyState.ACTIVE, modelFamilies: ["claude", "claude-haiku", "claude-sonnet", "claude-opus"] });
  });

  it("a trial key: trial, no dall-e; the 32k quirk: no gpt4-32k", () => {
    expect(keys.get(oai("trial"))).toMatchObject({ trial: true, modelFamilies: ["turbo"], state: KeyState.ACTIVE });
    expect(keys.get(oai("32k-quirk"))!.modelFamilies).toEqual(["turbo", "gpt4", "gpt4o"]);
  });

  it("a key of several organizations: bound to the default, one checked clone per other organization", () => {
    expect(keys.get(oai("multi-org"))).toMatchObject({ organizationId: MULTI_ORG.default, state: KeyState.ACTIVE });
    for (const org of MULTI_ORG.others) {
      const k = keys.get(clone(org))!;
      expect(k).toMatchObject({ organizationId: org, state: KeyState.ACTIVE, modelFamilies: ["turbo"] });
      expect(k.lastChecked).toBeDefined();
    }
  });

  it("5xx, refused, slow: unchanged and not checked (tried again later)", () => {
    for (const b of ["5xx", "refused", "slow"]) {
      expect(keys.get(oai(b))).toMatchObject({ state: KeyState.ACTIVE, modelFamilies: ["turbo", "gpt4"] });
      expect(keys.get(oai(b))!.lastChecked).toBeUndefined();
    }
  });

  it("WatchKeys streamed the same findings", async () => {
    await eventually("WatchKeys to catch up", () =>
      [...keys.values()].every((k) => {
        const w = watched.get(k.keyHash);
        return w !== undefined && w.state === k.state && w.trial === k.trial && w.modelFamilies.join() === k.modelFamilies.join();
      }),
    );
    expect(watched.get(clone(MULTI_ORG.others[0]))?.organizationId).toBe(MULTI_ORG.others[0]);
  });

  it("Lease(\"gpt-4o\") works without a keys file: the check found the family", async () => {
    const lease = await pool.lease({ model: "gpt-4o" });
    expect([oai("working"), oai("multi-org"), oai("32k-quirk")]).toContain(lease.keyHash);
    expect(lease.modelFamily).toBe("gpt4o");
  });

  it("no log line carries a secret", () => {
    const { stdout, stderr } = server.output();
    expect(stdout + stderr).not.toMatch(/sk-fake-|sk-ant-fake-/);
    expect(server.logs.some((l) => l.msg === "key checked")).toBe(true);
  });

  it("RecheckKeys revives an over-quota key whose upstream recovered, and leaves a revoked one REVOKED", async () => {
    fake.setBehaviour("sk-fake-over-quota-1", "working");
    const before = await listed();
    const since = (h: string) => timestampMs(before.get(h)!.lastChecked!);
    const { scheduled } = await admin.recheckKeys({ keyHashes: [oai("over-quota"), oai("revoked")] });
    expect(scheduled).toBe(2);
    await eventually("both rechecked", async () => {
      const now = await listed();
      return [oai("over-quota"), oai("revoked")].every((h) => now.get(h)?.lastChecked && timestampMs(now.get(h)!.lastChecked!) > since(h));
    });
    const after = await listed();
    expect(after.get(oai("over-quota"))).toMatchObject({ state: KeyState.ACTIVE, stateReason: "", modelFamilies: ["turbo", "gpt4", "gpt4o", "o3-mini", "dall-e"] });
    expect(after.get(oai("revoked"))!.state).toBe(KeyState.REVOKED);
  });

  it("RecheckKeys of an unknown key is NOT_FOUND and marks nothing", async () => {
    await expect(admin.recheckKeys({ keyHashes: [oai("working"), "oai-00000000000000ff"] })).rejects.toThrow(/not_found|oai-00000000000000ff/i);
  });
});

describe("shutdown", () => {
  it("SIGTERM while checks hang on a slow upstream exits within 5 s", async () => {
    const slow = await FakeUpstream.start({ slowMs: 120_000 });
    const hanging = await spawnServer(
      checkerEnv(slow.url, {
        KEYPOOL_CHECK_TIMEOUT: "60s",
        OPENAI_KEY: [1, 2, 3, 4].map((n) => `sk-fake-slow-${n}`).join(","),
      }),
    );
    try {
      await eventually("checks hanging on the slow upstream", () => slow.stats().keysInFlight === 3);
      const t0 = Date.now();
      const exit = await hanging.stop("SIGTERM");
      expect(Date.now() - t0).toBeLessThan(5000);
      expect(exit.code).toBe(0);
    } finally {
      await hanging.stop("SIGKILL");
      await slow.close();
    }
  });
});

describe("configuration", () => {
  it.each([
    ["KEYPOOL_OPENAI_BASE_URL", "gw.example"],
    ["KEYPOOL_ANTHROPIC_BASE_URL", "ftp://127.0.0.1:21"],
    ["KEYPOOL_CHECK_TIMEOUT", "soon"],
    ["KEYPOOL_CHECK_PERIOD", "1 hour"],
    ["KEYPOOL_AZURE_BASE_URL", "https://{region}.azure.gw.example"],
    ["KEYPOOL_VERTEX_TOKEN_URL", "gw.example/token"],
  ])("%s=%s stops the start with a message naming the variable", async (variable, value) => {
    const { code, stderr } = await runServerExpectingFailure({ [variable]: value });
    expect(code).toBe(2);
    expect(stderr).toContain(variable);
  });
});
