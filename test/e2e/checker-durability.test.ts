/**
 * Findings are durable: they survive a restart, a restart does not check again the keys checked
 * within their period, and a SIGKILL at any moment never leaves half of an organization clone
 * set in the state file (the finding and its clones are one commit).
 */
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { KeyAdminService, KeyPoolService, KeyState, Provider, type KeyStatus } from "../../gen/ts/keypool/v1/keypool_pb";
import { hashKey } from "../../src/domain/key-hash";
import { MULTI_ORG } from "../../src/fake-upstream/behaviours";
import { FakeUpstream } from "../../src/fake-upstream/fake-upstream";
import { ensureBuilt, spawnServer, type ChildServer } from "../support/child-server";
import { fakeUpstreamEnv } from "../support/checker-safety";

jest.setTimeout(120_000);

let dir: string;
let fake: FakeUpstream;

beforeAll(async () => {
  ensureBuilt();
  fake = await FakeUpstream.start();
}, 180_000);
afterAll(async () => {
  await fake.close();
});
beforeEach(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), "keypool-checker-durable-"));
});
afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

function env(stateFile: string, extra: Record<string, string> = {}): Record<string, string> {
  return {
    KEYPOOL_STATE: stateFile,
    KEYPOOL_CHECK_KEYS: "true",
    ...fakeUpstreamEnv(fake.url),
    KEYPOOL_CHECK_TIMEOUT: "2s",
    ...extra,
  };
}

async function list(server: ChildServer): Promise<Map<string, KeyStatus>> {
  const client = createClient(KeyPoolService, createGrpcTransport({ baseUrl: server.url }));
  const { keys } = await client.listKeys({});
  return new Map(keys.map((k) => [k.keyHash, k]));
}

async function eventually(what: string, condition: () => Promise<boolean>, timeoutMs = 45_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

const KEYS = ["sk-fake-working-d1", "sk-fake-trial-d1", "sk-fake-revoked-d1", "sk-fake-multi-org-d1"];
const parent = hashKey("openai", "sk-fake-multi-org-d1", "");
const clones = MULTI_ORG.others.map((org) => hashKey("openai", "sk-fake-multi-org-d1", org));

it("findings survive a restart, and keys checked within their period are not checked again", async () => {
  const stateFile = path.join(dir, "keypool.db");
  const first = await spawnServer(env(stateFile, { OPENAI_KEY: KEYS.join(",") }));
  let before: Map<string, KeyStatus> | undefined;
  try {
    await eventually("every key checked", async () => {
      before = await list(first);
      return before.size === KEYS.length + clones.length && [...before.values()].every((k) => k.lastChecked !== undefined);
    });
  } finally {
    await first.stop("SIGTERM");
  }
  fake.resetStats();
  const second = await spawnServer(env(stateFile, { OPENAI_KEY: KEYS.join(",") }));
  try {
    const after = await list(second);
    expect([...after.keys()].sort()).toEqual([...before!.keys()].sort());
    for (const [keyHash, k] of before!) {
      const again = after.get(keyHash)!;
      expect({ families: again.modelFamilies, trial: again.trial, state: again.state, org: again.organizationId, reason: again.stateReason }).toEqual({
        families: k.modelFamilies,
        trial: k.trial,
        state: k.state,
        org: k.organizationId,
        reason: k.stateReason,
      });
      expect(again.lastChecked).toEqual(k.lastChecked);
    }
    expect(after.get(hashKey("openai", "sk-fake-trial-d1", ""))).toMatchObject({ trial: true, modelFamilies: ["turbo"] });
    expect(after.get(hashKey("openai", "sk-fake-revoked-d1", ""))!.state).toBe(KeyState.REVOKED);
    // Give a checker that would check again the time to do so: nothing reaches the upstream.
    await new Promise((resolve) => setTimeout(resolve, 1500));
    expect(fake.stats().requests).toBe(0);
  } finally {
    await second.stop("SIGTERM");
  }
});

it("a SIGKILL between a finding and its commit never leaves a half-applied clone set", async () => {
  // Kills land before the check, right after the fake upstream's last answer (while the finding
  // is applied and committed, a few milliseconds later each round), and after the commit.
  const slowFake = await FakeUpstream.start({ latencyMs: 100 });
  const outcomes: string[] = [];
  const ROUNDS = 8;
  try {
    for (let round = 0; round < ROUNDS; round++) {
      const stateFile = path.join(dir, `round-${round}.db`);
      slowFake.resetStats();
      const server = await spawnServer({
        ...env(stateFile, { OPENAI_KEY: "sk-fake-multi-org-d1" }),
        ...fakeUpstreamEnv(slowFake.url),
      });
      if (round === ROUNDS - 1) {
        // ListKeys shows the finding once it is applied, before its commit; an admin write
        // answers only after everything changed before it is committed, so once AddKeys answers
        // the finding is in the file.
        await eventually("the finding applied", async () => (await list(server)).get(parent)?.organizationId === MULTI_ORG.default);
        const admin = createClient(KeyAdminService, createGrpcTransport({ baseUrl: server.url }));
        await admin.addKeys({ provider: Provider.OPENAI, keys: [{ key: "sk-fake-working-flush-d1" }] });
      } else if (round > 0) {
        // The three answers of the parent's first check have left the fake.
        while (slowFake.stats().requests < 3) await new Promise((resolve) => setTimeout(resolve, 1));
        await new Promise((resolve) => setTimeout(resolve, (round - 1) * 4));
      }
      await server.stop("SIGKILL");
      const reopened = await spawnServer({ KEYPOOL_STATE: stateFile, OPENAI_KEY: "sk-fake-multi-org-d1" });
      try {
        const keys = await list(reopened);
        const bound = keys.get(parent)!.organizationId;
        const present = clones.filter((h) => keys.has(h));
        if (bound === "") {
          expect(present).toEqual([]);
          expect(keys.get(parent)!.lastChecked).toBeUndefined();
          outcomes.push("before");
        } else {
          expect(bound).toBe(MULTI_ORG.default);
          expect(present).toEqual(clones);
          outcomes.push("after");
        }
      } finally {
        await reopened.stop("SIGTERM");
      }
    }
  } finally {
    await slowFake.close();
  }
  // Both sides of the commit were seen: a torn set would have been noticed in between.
  expect(outcomes[0]).toBe("before");
  expect(outcomes[ROUNDS - 1]).toBe("after");
});
