/**
 * Real Chromium for browser tests: Debian's /usr/bin/chromium driven by playwright-core (never a
 * downloaded browser), and the dashboard bundle built before a test opens it.
 */
import { execFileSync } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";
import { chromium, type Browser } from "playwright-core";
import { REPO_ROOT } from "./child-server";

export const CHROMIUM = "/usr/bin/chromium";

export async function launchChromium(): Promise<Browser> {
  if (!fs.existsSync(CHROMIUM)) {
    throw new Error(`${CHROMIUM} is missing: install the Debian package chromium (.ci/run does)`);
  }
  return chromium.launch({ executablePath: CHROMIUM, headless: true, args: ["--headless", "--no-sandbox", "--disable-gpu"] });
}

function newestMtime(dir: string): number {
  let newest = 0;
  for (const entry of fs.readdirSync(dir, { withFileTypes: true })) {
    const full = path.join(dir, entry.name);
    newest = Math.max(newest, entry.isDirectory() ? newestMtime(full) : fs.statSync(full).mtimeMs);
  }
  return newest;
}

/** Bundles web/ into dist/web when the bundle is missing or older than its sources. */
export function ensureDashboardBuilt(): void {
  const bundle = path.join(REPO_ROOT, "dist/web/app.js");
  const built = fs.existsSync(bundle) ? fs.statSync(bundle).mtimeMs : 0;
  const sources = Math.max(newestMtime(path.join(REPO_ROOT, "web")), newestMtime(path.join(REPO_ROOT, "gen/ts")));
  if (built >= sources) return;
  execFileSync(process.execPath, [path.join(REPO_ROOT, "scripts/build-dashboard.mjs")], { cwd: REPO_ROOT, stdio: "pipe" });
}
