/**
 * The web dashboard with 100,000 keys, in Debian's Chromium: bundle size, time to first render
 * (navigation start to the table drawn, from the page's own `keypool:first-render` mark), and
 * side by side in the same run the time a plain connect-node client takes to receive the same
 * WatchKeys snapshot, and the page with 100 keys, so that the page's own cost is a ratio.
 * Then sorting and filtering 100,000 rows, and the page's JS heap.
 *
 *   npm run build && npx tsx bench/dashboard.bench.ts [--rounds=3] [--keys=100000]
 */
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { gzipSync } from "node:zlib";
import { createClient } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import { KeyPoolService } from "../gen/ts/keypool/v1/keypool_pb";
import { launchChromium } from "../test/support/browser";
import { median } from "./lib/stats";
import { ROOT, startKeypool, type ServerHandle } from "./lib/keypool-server";
import { writeKeysFile } from "./lib/keys-file";
import type { PageDocument, PageElement } from "../test/support/page-globals";

// Used only inside page.evaluate, which runs in the browser.
declare const document: PageDocument;
/** Chromium's performance: its heap size, and navigation entries next to resources. */
type PagePerformance = { memory: { usedJSHeapSize: number }; getEntriesByType(type: string): { transferSize?: number }[] };

const arg = (name: string, fallback: number) => Number(process.argv.find((a) => a.startsWith(`--${name}=`))?.split("=")[1] ?? fallback);
const ROUNDS = arg("rounds", 3);
const KEYS = arg("keys", 100_000);

async function serverWith(keys: number, dir: string): Promise<ServerHandle> {
  const file = path.join(dir, `keys-${keys}.json`);
  writeKeysFile(file, keys);
  return startKeypool({ env: { KEYPOOL_KEYS_FILE: file, KEYPOOL_STATE: "memory" }, cpus: undefined, deadlineMs: 120_000 });
}

/** Milliseconds for a connect-node client (binary Connect, HTTP/1.1 like the page) to receive the snapshot. */
async function nodeSnapshotMs(port: number): Promise<number> {
  const client = createClient(KeyPoolService, createConnectTransport({ baseUrl: `http://127.0.0.1:${port}`, httpVersion: "1.1", useBinaryFormat: true }));
  const abort = new AbortController();
  const t0 = performance.now();
  for await (const message of client.watchKeys({}, { signal: abort.signal })) {
    if (message.event.case === "snapshot") break;
  }
  const ms = performance.now() - t0;
  abort.abort();
  return ms;
}

async function main(): Promise<void> {
  const dir = mkdtempSync(path.join(os.tmpdir(), "keypool-dashboard-bench-"));
  const web = path.join(ROOT, "dist/web");
  const sizes = Object.fromEntries(
    ["app.js", "app.css", "index.html"].map((name) => {
      const body = readFileSync(path.join(web, name));
      return [name, { bytes: body.length, gzip: gzipSync(body, { level: 9 }).length }];
    }),
  );
  const browser = await launchChromium();
  const large = await serverWith(KEYS, dir);
  const small = await serverWith(100, dir);
  const result: Record<string, number[]> = { firstRenderLarge: [], firstRenderSmall: [], nodeSnapshot: [], snapshotReceived: [], sort: [], filter: [], heapMiB: [], transferKiB: [] };
  try {
    for (let round = 0; round < ROUNDS; round++) {
      result.nodeSnapshot.push(await nodeSnapshotMs(large.port));
      for (const [server, key] of [[large, "firstRenderLarge"], [small, "firstRenderSmall"]] as const) {
        const page = await browser.newPage({ viewport: { width: 1280, height: 860 } });
        const keys = server === large ? KEYS : 100;
        await page.goto(`http://127.0.0.1:${server.port}/`);
        await page.waitForSelector(`body[data-keys="${keys}"]`, { timeout: 120_000 });
        result[key].push(await page.evaluate(() => performance.getEntriesByName("keypool:first-render")[0].startTime));
        if (server === large) {
          result.snapshotReceived.push(await page.evaluate(() => performance.getEntriesByName("keypool:snapshot-received")[0].startTime));
        }
        if (server === large) {
          // Sorting and filtering run synchronously in the event handler: timed inside the page.
          result.sort.push(
            await page.evaluate(() => {
              const t0 = performance.now();
              (document.querySelector('#keys-head button[data-column="leases"]') as PageElement).click();
              return performance.now() - t0;
            }),
          );
          result.filter.push(
            await page.evaluate(() => {
              const input = document.getElementById("filter-text") as PageElement;
              input.value = "oai-00";
              const t0 = performance.now();
              input.dispatchEvent(new Event("input"));
              return performance.now() - t0;
            }),
          );
          result.heapMiB.push(await page.evaluate(() => (performance as unknown as PagePerformance).memory.usedJSHeapSize / 2 ** 20));
          result.transferKiB.push(
            await page.evaluate(() => {
              const p = performance as unknown as PagePerformance;
              return [...p.getEntriesByType("resource"), ...p.getEntriesByType("navigation")].reduce((sum, e) => sum + (e.transferSize ?? 0), 0) / 1024;
            }),
          );
        }
        await page.close();
      }
    }
  } finally {
    await browser.close();
    await large.stop();
    await small.stop();
    rmSync(dir, { recursive: true, force: true });
  }
  const m = (k: string) => median(result[k]);
  console.log(JSON.stringify({ keys: KEYS, rounds: ROUNDS, sizes, samples: result }, null, 1));
  console.log(`\nbundle: app.js ${sizes["app.js"].bytes} B (${sizes["app.js"].gzip} B gzip), app.css ${sizes["app.css"].bytes} B, index.html ${sizes["index.html"].bytes} B`);
  console.log(`first render, ${KEYS} keys: ${m("firstRenderLarge").toFixed(0)} ms (median of ${ROUNDS})`);
  console.log(`  of which: snapshot decoded by the page ${m("snapshotReceived").toFixed(0)} ms, rows built, sorted and drawn ${(m("firstRenderLarge") - m("snapshotReceived")).toFixed(0)} ms`);
  console.log(`first render, 100 keys: ${m("firstRenderSmall").toFixed(0)} ms`);
  console.log(`connect-node client receives the ${KEYS}-key snapshot: ${m("nodeSnapshot").toFixed(0)} ms`);
  console.log(`ratio page first render / node snapshot: ${(m("firstRenderLarge") / m("nodeSnapshot")).toFixed(2)}`);
  console.log(`sort ${KEYS} rows: ${m("sort").toFixed(0)} ms; text filter: ${m("filter").toFixed(0)} ms; JS heap ${m("heapMiB").toFixed(0)} MiB; page assets transferred ${m("transferKiB").toFixed(0)} KiB`);
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
