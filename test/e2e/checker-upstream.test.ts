/**
 * The checker's HTTP side against the fake upstream over real sockets: every behaviour the fake
 * offers comes out as docs/checker.md says, timeouts and refused connections included.
 */
import { upstreamCheck } from "../../src/checker/upstream-check";
import type { CheckSubject } from "../../src/domain/key-check";
import { FamilyTable } from "../../src/domain/model-families";
import { FakeUpstream } from "../../src/fake-upstream/fake-upstream";
import { MULTI_ORG } from "../../src/fake-upstream/behaviours";
import { checkSubject } from "../support/check-subject";

let fake: FakeUpstream;
beforeAll(async () => {
  fake = await FakeUpstream.start({ slowMs: 5_000 });
});
afterAll(() => fake.close());

const subject = (secret: string, extra: Partial<CheckSubject> = {}): CheckSubject =>
  checkSubject(secret.startsWith("sk-ant-") ? "anthropic" : "openai", secret, extra);

const check = (timeoutMs = 2000) =>
  upstreamCheck({ ...fake.checkerUrls(), timeoutMs, families: FamilyTable.builtIn() });
const run = (secret: string, extra: Partial<CheckSubject> = {}, timeoutMs?: number) =>
  check(timeoutMs)(subject(secret, extra), new AbortController().signal);

describe("OpenAI keys against the fake upstream", () => {
  it("working: ACTIVE, paid, its models' families, bound to its one organization", async () => {
    expect(await run("sk-fake-working-1")).toEqual({
      kind: "checked",
      finding: {
        state: "active",
        trial: false,
        modelFamilies: ["turbo", "gpt4", "gpt4o", "o3-mini", "dall-e"],
        organizationId: "org-fake-only",
        cloneOrganizations: [],
      },
      warnings: [],
    });
  });

  it("trial: trial flag, no dall-e", async () => {
    expect(await run("sk-fake-trial-1")).toMatchObject({ kind: "checked", finding: { state: "active", trial: true, modelFamilies: ["turbo"] } });
  });

  it("32k quirk: no gpt4-32k", async () => {
    expect(await run("sk-fake-32k-quirk-1")).toMatchObject({ finding: { modelFamilies: ["turbo", "gpt4", "gpt4o"] } });
  });

  it("multi-org: bound to the default, the others as clones; a clone asks under its organization", async () => {
    expect(await run("sk-fake-multi-org-1")).toMatchObject({
      finding: { organizationId: MULTI_ORG.default, cloneOrganizations: [...MULTI_ORG.others] },
    });
    expect(await run("sk-fake-multi-org-1", { organizationId: MULTI_ORG.others[0] })).toMatchObject({
      finding: { state: "active", modelFamilies: ["turbo"] },
    });
  });

  it("revoked, over quota, terminated, rate limited", async () => {
    expect(await run("sk-fake-revoked-1")).toMatchObject({ finding: { state: "revoked" } });
    expect(await run("sk-not-known-to-the-fake")).toMatchObject({ finding: { state: "revoked" } });
    expect(await run("sk-fake-over-quota-1")).toMatchObject({ finding: { state: "over_quota" } });
    expect(await run("sk-fake-terminated-1")).toMatchObject({ finding: { state: "revoked" } });
    expect(await run("sk-fake-rate-limited-1", { firstCheck: false })).toEqual({ kind: "checked", finding: { trial: false }, warnings: [] });
  });

  it("5xx, refused, slow (timeout): tried again after a minute", async () => {
    expect(await run("sk-fake-5xx-1")).toMatchObject({ kind: "retry", afterMs: 60_000 });
    expect(await run("sk-fake-refused-1")).toMatchObject({ kind: "retry", why: expect.stringMatching(/network/) });
    const t0 = Date.now();
    expect(await run("sk-fake-slow-1", {}, 300)).toMatchObject({ kind: "retry", why: expect.stringMatching(/timed out/) });
    expect(Date.now() - t0).toBeLessThan(4000);
  });

  it("a cancelled check ends at once", async () => {
    const cancel = new AbortController();
    const pending = check(10_000)(subject("sk-fake-slow-2"), cancel.signal);
    setTimeout(() => cancel.abort(), 50);
    expect(await pending).toMatchObject({ kind: "retry" });
  });

  it("a connection nobody listens on is a network error", async () => {
    const closed = await FakeUpstream.start();
    const urls = closed.checkerUrls();
    await closed.close();
    const outcome = await upstreamCheck({ ...urls, timeoutMs: 2000, families: FamilyTable.builtIn() })(
      subject("sk-fake-working-1"),
      new AbortController().signal,
    );
    expect(outcome).toMatchObject({ kind: "retry", why: expect.stringMatching(/network/) });
  });
});

describe("Anthropic keys against the fake upstream", () => {
  it.each([
    ["sk-ant-fake-working-1", { kind: "checked", finding: { state: "active" } }],
    ["sk-ant-fake-revoked-1", { kind: "checked", finding: { state: "revoked" } }],
    ["sk-ant-fake-over-quota-1", { kind: "checked", finding: { state: "over_quota" } }],
    ["sk-ant-fake-terminated-1", { kind: "checked", finding: { state: "revoked" } }],
    ["sk-ant-fake-rate-limited-1", { kind: "retry", afterMs: 10_000 }],
    ["sk-ant-fake-5xx-1", { kind: "retry", afterMs: 60_000 }],
    ["sk-ant-fake-refused-1", { kind: "retry", afterMs: 60_000 }],
  ])("%s", async (secret, expected) => {
    expect(await run(secret)).toMatchObject(expected);
  });
});

it("the fake counts the requests and keys in flight", async () => {
  fake.resetStats();
  const c = check(5000);
  await Promise.all(["sk-fake-working-a", "sk-fake-working-b"].map((k) => c(subject(k), new AbortController().signal)));
  expect(fake.stats()).toMatchObject({ requests: 6, inFlight: 0, keysSeen: 2 });
  expect(fake.stats().maxKeysInFlight).toBeGreaterThanOrEqual(1);
  expect(fake.stats().maxKeysInFlight).toBeLessThanOrEqual(2);
});
