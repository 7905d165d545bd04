/**
 * The web dashboard in real Chromium (Debian's, through playwright-core) against the built
 * server run as operators run it: every key is shown, a DisableKey made through RPC shows within
 * a second, leases move the counters, a server restart is survived (and said so on the page), an
 * admin action from the page changes the key, and with tokens the page asks for one and obeys
 * the roles, and an admin's Recheck sends a key back to the checker (against the fake upstream)
 * and the page shows the new check. Nothing is fetched from anywhere but the server, and the Content-Security-Policy
 * holds (no violation reported). Takes the README's screenshots: into docs/img/ when
 * KEYPOOL_SCREENSHOTS=docs/img asks for them to be renewed, else into a temporary folder, so that
 * a test run leaves the checkout as it found it.
 */
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { createClient, type Client } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import type { Browser, Page } from "playwright-core";
import { KeyAdminService, KeyPoolService, KeyState } from "../../gen/ts/keypool/v1/keypool_pb";
import { timestampMs } from "@bufbuild/protobuf/wkt";
import { FakeUpstream } from "../../src/fake-upstream/fake-upstream";
import { ensureDashboardBuilt, launchChromium } from "../support/browser";
import { REPO_ROOT, spawnServer, type ChildServer } from "../support/child-server";
import { fakeUpstreamEnv } from "../support/checker-safety";
import type { PageDocument, PageElement, PageStorage } from "../support/page-globals";

// Used only inside page.evaluate / waitForFunction, which run in the browser.
declare const document: PageDocument;
declare const sessionStorage: PageStorage;
declare const localStorage: PageStorage;

jest.setTimeout(120_000);

const OPENAI_KEYS = Array.from({ length: 8 }, (_, i) => `sk-dash-openai-${String(i + 1).padStart(4, "0")}`);
const ANTHROPIC_KEYS = Array.from({ length: 4 }, (_, i) => `sk-ant-dash-${String(i + 1).padStart(4, "0")}`);
const KEY_ENV = { OPENAI_KEY: OPENAI_KEYS.join(","), ANTHROPIC_KEY: ANTHROPIC_KEYS.join(",") };
const SCREENSHOTS = process.env.KEYPOOL_SCREENSHOTS
  ? path.resolve(REPO_ROOT, process.env.KEYPOOL_SCREENSHOTS)
  : fs.mkdtempSync(path.join(os.tmpdir(), "keypool-screenshots-"));

interface Clients {
  pool: Client<typeof KeyPoolService>;
  admin: Client<typeof KeyAdminService>;
}

function clientsFor(url: string): Clients {
  const transport = createConnectTransport({ baseUrl: url, httpVersion: "2" });
  return { pool: createClient(KeyPoolService, transport), admin: createClient(KeyAdminService, transport) };
}

/** The page's cell text for a key's column (the table is virtualised: the key must be in view). */
async function cell(page: Page, hash: string, column: string): Promise<string> {
  return (await page.locator(`.viewport .row[data-hash="${hash}"] .col-${column}`).textContent()) ?? "";
}

/** Records every request the page makes to anywhere but the server, and every CSP violation. */
function watchPage(page: Page, origin: string): { foreign: string[]; cspViolations: string[]; errors: string[] } {
  const seen = { foreign: [] as string[], cspViolations: [] as string[], errors: [] as string[] };
  page.on("request", (req) => {
    const url = req.url();
    if (!url.startsWith(origin) && !url.startsWith("data:")) seen.foreign.push(url);
  });
  page.on("console", (message) => {
    if (/Content Security Policy/i.test(message.text())) seen.cspViolations.push(message.text());
  });
  page.on("pageerror", (err) => seen.errors.push(err.message));
  return seen;
}

let browser: Browser;
let dir: string;

beforeAll(async () => {
  ensureDashboardBuilt();
  browser = await launchChromium();
  dir = fs.mkdtempSync(path.join(os.tmpdir(), "keypool-dashboard-"));
  fs.mkdirSync(SCREENSHOTS, { recursive: true });
});

afterAll(async () => {
  await browser?.close();
  fs.rmSync(dir, { recursive: true, force: true });
});

describe("the dashboard without tokens (loopback)", () => {
  let server: ChildServer;
  let rpc: Clients;
  let hashes: string[];
  const state = () => path.join(dir, "open.db");

  beforeAll(async () => {
    server = await spawnServer({ ...KEY_ENV, KEYPOOL_STATE: state() });
    rpc = clientsFor(server.url);
    hashes = (await rpc.pool.listKeys({})).keys.map((k) => k.keyHash);
  });
  afterAll(async () => {
    await server?.stop();
  });

  it("shows every key live, follows RPC changes within a second, counts leases, survives a restart, and acts as admin", async () => {
    const context = await browser.newContext({ viewport: { width: 1280, height: 860 } });
    const page = await context.newPage();
    const seen = watchPage(page, server.url);
    const response = await page.goto(server.url);
    const csp = response!.headers()["content-security-policy"];
    expect(csp).toContain("default-src 'none'");
    expect(csp).toContain("script-src 'self'");
    expect(csp).not.toContain("unsafe-inline");
    // No inline script in the page itself.
    const html = await response!.text();
    expect(html).not.toMatch(/<script(?![^>]*\bsrc=)[^>]*>/);

    await page.waitForSelector(`body[data-keys="${hashes.length}"]`);
    await expect(page.locator("#connection").textContent()).resolves.toBe("● live");
    for (const hash of hashes) expect(await cell(page, hash, "hash")).toBe(hash);
    expect(await page.locator("#row-count").textContent()).toBe(`12 of 12 keys`);
    expect(await page.locator("#who").textContent()).toBe("no tokens configured");

    // A DisableKey through RPC shows within a second.
    const target = hashes[0];
    const started = Date.now();
    await rpc.admin.disableKey({ keyHash: target, state: KeyState.OVER_QUOTA, reason: "billing limit reached" });
    await page.waitForFunction(
      (hash) => document.querySelector(`.viewport .row[data-hash="${hash}"] .col-state`)?.textContent === "over quota: billing limit reached",
      target,
      { timeout: 1000 },
    );
    const shownAfterMs = Date.now() - started;
    expect(shownAfterMs).toBeLessThan(1000);

    // Leases move the counters: the summary's total, and the leased rows' counts and usage.
    const leased: string[] = [];
    for (let i = 0; i < 5; i++) leased.push((await rpc.pool.lease({ model: "gpt-4o-mini" })).keyHash);
    const first = await rpc.pool.lease({ model: "claude-3-5-sonnet-20241022" });
    await rpc.pool.incrementUsage({ keyHash: first.keyHash, model: "claude-3-5-sonnet-20241022", inputTokens: 1500n, outputTokens: 320n, leaseId: first.leaseId });
    await rpc.pool.reportRateLimit({ keyHash: leased[1], statusCode: 429, headers: { "retry-after": "50" } });
    await page.waitForFunction(() => document.getElementById("lease-total")?.textContent === "6", undefined, { timeout: 2000 });
    expect(await cell(page, leased[0], "leases")).toBe("1");
    expect(await cell(page, leased[0], "inflight")).toBe("1");
    await page.waitForFunction((hash) => /claude-sonnet 1\.5k\/320/.test(document.querySelector(`.row[data-hash="${hash}"] .col-usage`)?.textContent ?? ""), first.keyHash);
    await page.waitForFunction((hash) => /^429, \d+ s left$/.test(document.querySelector(`.row[data-hash="${hash}"] .col-cooldown`)?.textContent ?? ""), leased[1]);
    // The countdown to ready_at moves without a new event.
    const before = await cell(page, leased[1], "ready");
    await page.waitForFunction(
      ([hash, text]) => document.querySelector(`.row[data-hash="${hash}"] .col-ready`)?.textContent !== text,
      [leased[1], before] as const,
      { timeout: 3000 },
    );

    // Filters and sorting.
    await page.selectOption("#filter-provider", "anthropic");
    expect(await page.locator("#row-count").textContent()).toBe("4 of 12 keys");
    await page.selectOption("#filter-provider", "");
    await page.selectOption("#filter-state", "over_quota");
    expect(await page.locator("#row-count").textContent()).toBe("1 of 12 keys");
    await page.selectOption("#filter-state", "");
    await page.fill("#filter-text", target.slice(0, 10));
    expect(await page.locator("#row-count").textContent()).toBe("1 of 12 keys");
    await page.fill("#filter-text", "");
    await page.click('#keys-head button[data-column="leases"]');
    await page.click('#keys-head button[data-column="leases"]');
    const topRow = await page.locator(".viewport .row:not([hidden])").evaluateAll((els) =>
      els.map((el) => ({ top: (el as unknown as PageElement).getBoundingClientRect().top, hash: (el as unknown as PageElement).dataset.hash })).sort((a, b) => a.top - b.top)[0].hash,
    );
    expect(await cell(page, topRow!, "leases")).toBe("1");
    await page.click('#keys-head button[data-column="hash"]');

    // The watcher count comes from /metrics: this page's stream is one.
    await page.waitForFunction(() => Number(document.getElementById("watchers")?.textContent) >= 1, undefined, { timeout: 7000 });
    await page.waitForTimeout(5200); // one chart bucket closes, with the leases in it
    await page.screenshot({ path: path.join(SCREENSHOTS, "dashboard-desktop.png") });

    // A narrow phone.
    const phone = await browser.newContext({ viewport: { width: 390, height: 844 }, isMobile: true, hasTouch: true });
    const phonePage = await phone.newPage();
    await phonePage.goto(server.url);
    await phonePage.waitForSelector(`body[data-keys="${hashes.length}"]`);
    expect(await phonePage.evaluate(() => document.documentElement.scrollWidth)).toBeLessThanOrEqual(390);
    await phonePage.screenshot({ path: path.join(SCREENSHOTS, "dashboard-phone.png"), fullPage: true });
    await phone.close();

    // A restart: the page says the connection is lost, reconnects by itself, and is live again.
    const port = server.port;
    await server.stop();
    await page.waitForFunction(() => /Connection to keypool lost.*Reconnecting in/.test(document.getElementById("banner")?.textContent ?? ""), undefined, { timeout: 5000 });
    expect(await page.locator("#connection").textContent()).toBe("reconnecting");
    server = await spawnServer({ ...KEY_ENV, KEYPOOL_STATE: state(), KEYPOOL_PORT: String(port) });
    rpc = clientsFor(server.url);
    await page.waitForFunction(() => document.getElementById("connection")?.textContent === "● live", undefined, { timeout: 15_000 });
    expect(await page.locator("#banner").textContent()).toMatch(/Reconnected/);
    expect(await cell(page, target, "state")).toBe("over quota: billing limit reached"); // from the state file
    // The new stream is live: an RPC change on the new server shows.
    await rpc.admin.disableKey({ keyHash: hashes[2], reason: "rotated" });
    await page.waitForFunction((hash) => document.querySelector(`.row[data-hash="${hash}"] .col-state`)?.textContent === "disabled: rotated", hashes[2], { timeout: 1000 });

    // An admin action from the page (no tokens configured: everyone on loopback is admin).
    await page.click(`.viewport .row[data-hash="${target}"]`);
    await page.waitForSelector("#key-dialog[open]");
    await page.click('#key-actions button:has-text("Enable")');
    await page.waitForSelector("#confirm-dialog[open]");
    expect(await page.locator("#confirm-text").textContent()).toContain(target);
    await page.click("#confirm-ok");
    await page.waitForFunction(() => document.getElementById("key-message")?.textContent === "Enable: done.");
    const enabled = (await rpc.pool.listKeys({})).keys.find((k) => k.keyHash === target)!;
    expect(enabled.state).toBe(KeyState.ACTIVE);
    await page.waitForFunction((hash) => document.querySelector(`.row[data-hash="${hash}"] .col-state`)?.textContent === "active", target);

    expect(seen.foreign).toEqual([]);
    expect(seen.cspViolations).toEqual([]);
    expect(seen.errors).toEqual([]);
    await context.close();
  });
});

describe("the dashboard with tokens", () => {
  const TOKENS = { lease: "tok-dash-lease-1", watch: "tok-dash-watch-2", admin: "tok-dash-admin-3" };
  // Keys the fake upstream answers as working ones (src/fake-upstream/behaviours.ts).
  const CHECKED_KEY_ENV = {
    OPENAI_KEY: Array.from({ length: 8 }, (_, i) => `sk-fake-working-dash-${i + 1}`).join(","),
    ANTHROPIC_KEY: Array.from({ length: 4 }, (_, i) => `sk-ant-fake-working-dash-${i + 1}`).join(","),
  };
  let fake: FakeUpstream;
  let server: ChildServer;
  let rpc: Clients;
  let hashes: string[];
  const adminHeaders = { authorization: `Bearer ${TOKENS.admin}` };
  const lastCheckedMs = async (hash: string) => {
    const key = (await rpc.pool.listKeys({}, { headers: adminHeaders })).keys.find((k) => k.keyHash === hash)!;
    return key.lastChecked ? timestampMs(key.lastChecked) : 0;
  };

  beforeAll(async () => {
    fake = await FakeUpstream.start();
    server = await spawnServer({
      ...CHECKED_KEY_ENV,
      KEYPOOL_TOKENS: `lease:${TOKENS.lease},watch:${TOKENS.watch},admin:${TOKENS.admin}`,
      // First checks only: a key's last check moves again only when RecheckKeys asks for one.
      KEYPOOL_CHECK_KEYS: "true",
      KEYPOOL_CHECK_PERIOD: "0",
      ...fakeUpstreamEnv(fake.url),
    });
    rpc = clientsFor(server.url);
    const deadline = Date.now() + 30_000;
    for (;;) {
      const keys = (await rpc.pool.listKeys({}, { headers: adminHeaders })).keys;
      if (keys.length === 12 && keys.every((k) => k.lastChecked !== undefined && k.state === KeyState.ACTIVE)) {
        hashes = keys.map((k) => k.keyHash);
        break;
      }
      if (Date.now() > deadline) throw new Error(`the keys' first checks did not finish:\n${server.output().stdout.slice(-3000)}`);
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  });
  afterAll(async () => {
    await server?.stop();
    await fake?.close();
  });

  /** The open key panel's "last checked" text. */
  const panelLastChecked = async (page: Page) => (await page.locator('#key-details dt:text-is("last checked") + dd').textContent()) ?? "";
  /** Seconds the panel's "last checked" says ("3.2 s ago", "1 min 4 s ago"); Infinity for "never". */
  const panelLastCheckedSeconds = async (page: Page) => {
    const text = await panelLastChecked(page);
    const match = /^(?:(\d+) min )?(\d+(?:\.\d+)?) (ms|s) ago$/.exec(text);
    if (!match) return Infinity;
    return Number(match[1] ?? 0) * 60 + Number(match[2]) / (match[3] === "ms" ? 1000 : 1);
  };
  async function until(what: string, condition: () => Promise<boolean>, timeoutMs = 10_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!(await condition())) {
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  }

  async function signIn(page: Page, token: string): Promise<void> {
    await page.fill("#token", token);
    await page.click('#sign-in button[type="submit"]');
  }

  it("asks for a token, refuses the wrong role clearly, shows the keys to a watch token, and lets an admin act", async () => {
    const context = await browser.newContext({ viewport: { width: 1280, height: 860 } });
    const page = await context.newPage();
    const seen = watchPage(page, server.url);
    await page.goto(server.url);

    // No token: the sign-in form and its reason; no key is shown.
    await page.waitForSelector("#sign-in:not([hidden])");
    expect(await page.locator("#sign-in-reason").textContent()).toMatch(/needs a bearer token with the watch or admin role/);
    expect(await page.locator("#main").isHidden()).toBe(true);

    // A wrong token is UNAUTHENTICATED; a lease token is PERMISSION_DENIED, with the role named.
    await signIn(page, "tok-dash-watch-X");
    await page.waitForFunction(() => /was not accepted/.test(document.getElementById("sign-in-reason")?.textContent ?? ""));
    await signIn(page, TOKENS.lease);
    await page.waitForFunction(() => /may not watch the keys: WatchKeys needs the watch or admin role; this token has the lease role/.test(document.getElementById("sign-in-reason")?.textContent ?? ""));
    expect(await page.locator("#banner").textContent()).toMatch(/Permission denied/);

    // A watch token shows the keys, and offers no admin action.
    await signIn(page, TOKENS.watch);
    await page.waitForSelector(`body[data-keys="${hashes.length}"]`);
    expect(await page.locator("#who").textContent()).toBe("signed in (watch)");
    expect(await page.evaluate(() => sessionStorage.getItem("keypool.token"))).toBe(TOKENS.watch);
    expect(await page.evaluate(() => localStorage.length)).toBe(0);
    expect((await context.cookies()).length).toBe(0);
    await page.click(`.viewport .row[data-hash="${hashes[3]}"]`);
    await page.waitForSelector("#key-dialog[open]");
    expect(await page.locator("#key-actions button").count()).toBe(0);
    await page.click('#key-dialog button[value="close"]');

    // An admin token: Disable from the page, with a confirmation, changes the key.
    await page.click("#sign-out");
    await page.waitForSelector("#sign-in:not([hidden])");
    expect(await page.evaluate(() => sessionStorage.getItem("keypool.token"))).toBeNull();
    await signIn(page, TOKENS.admin);
    await page.waitForFunction(() => document.getElementById("who")?.textContent === "signed in (admin)");
    await page.click(`.viewport .row[data-hash="${hashes[3]}"]`);
    await page.click('#key-actions button:has-text("Disable")');
    await page.waitForSelector("#confirm-dialog[open]");
    await page.screenshot({ path: path.join(SCREENSHOTS, "dashboard-confirm.png") });
    // Cancel first: nothing changes.
    await page.click('#confirm-dialog button[value="cancel"]');
    expect((await rpc.pool.listKeys({}, { headers: adminHeaders })).keys.find((k) => k.keyHash === hashes[3])!.state).toBe(KeyState.ACTIVE);
    await page.click('#key-actions button:has-text("Disable")');
    await page.click("#confirm-ok");
    await page.waitForFunction(() => document.getElementById("key-message")?.textContent === "Disable: done.");
    const status = (await rpc.pool.listKeys({}, { headers: adminHeaders })).keys.find((k) => k.keyHash === hashes[3])!;
    expect(status.state).toBe(KeyState.DISABLED);
    expect(status.stateReason).toBe("disabled from the dashboard");
    await page.waitForFunction((hash) => /^disabled/.test(document.querySelector(`.row[data-hash="${hash}"] .col-state`)?.textContent ?? ""), hashes[3]);
    // A disabled key is not checked, so its panel offers no Recheck.
    await page.waitForFunction(() => document.querySelector("#key-actions button")?.textContent === "Enable");
    expect(await page.locator('#key-actions button:has-text("Recheck")').count()).toBe(0);
    await page.click('#key-dialog button[value="close"]');

    // Recheck from the page: the checker checks the key again and the panel shows the new check.
    const rechecked = hashes[5];
    const checkedBefore = await lastCheckedMs(rechecked);
    const otherCheckedBefore = await lastCheckedMs(hashes[6]);
    await page.click(`.viewport .row[data-hash="${rechecked}"]`);
    await page.waitForSelector("#key-dialog[open]");
    // Let the first check age, so that a new one reads clearly younger on the page.
    await until("the first check to be 3 s old on the page", async () => (await panelLastCheckedSeconds(page)) >= 3);
    await page.click('#key-actions button:has-text("Recheck")');
    await page.waitForSelector("#confirm-dialog[open]");
    expect(await page.locator("#confirm-text").textContent()).toContain(rechecked);
    await page.click('#confirm-dialog button[value="cancel"]');
    await page.waitForTimeout(500);
    expect(await lastCheckedMs(rechecked)).toBe(checkedBefore); // cancelled: nothing scheduled
    await page.click('#key-actions button:has-text("Recheck")');
    await page.click("#confirm-ok");
    await page.waitForFunction(() => document.getElementById("key-message")?.textContent === "Recheck: scheduled for a check.");
    await until("the page to show the new check", async () => (await panelLastCheckedSeconds(page)) < 2);
    expect(await lastCheckedMs(rechecked)).toBeGreaterThan(checkedBefore);
    expect(await panelLastChecked(page)).toMatch(/ago$/);
    // Only the named key was checked again.
    expect(await lastCheckedMs(hashes[6])).toBe(otherCheckedBefore);

    // /metrics obeys the same rule from the page: the admin token reads the watcher count.
    await page.waitForFunction(() => Number(document.getElementById("watchers")?.textContent) >= 1, undefined, { timeout: 7000 });
    expect(seen.foreign).toEqual([]);
    expect(seen.cspViolations).toEqual([]);
    expect(seen.errors).toEqual([]);
    await context.close();
  });
});
