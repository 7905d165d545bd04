#!/usr/bin/env node
// Bundles the web dashboard (web/) into dist/web with esbuild: one script, one stylesheet and
// the page, nothing fetched from elsewhere at run time. `npm run build` runs it; the server
// serves dist/web (src/server/dashboard-files.ts). Prints the sizes it wrote.
import { build } from "esbuild";
import { copyFileSync, mkdirSync, readdirSync, statSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { gzipSync } from "node:zlib";
import { readFileSync } from "node:fs";

const root = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const out = join(root, "dist/web");
mkdirSync(out, { recursive: true });

await build({
  entryPoints: [join(root, "web/src/main.ts")],
  bundle: true,
  minify: true,
  format: "iife",
  target: ["chrome110", "firefox115", "safari16"],
  outfile: join(out, "app.js"),
  legalComments: "external",
  logLevel: "warning",
});
copyFileSync(join(root, "web/index.html"), join(out, "index.html"));
copyFileSync(join(root, "web/style.css"), join(out, "app.css"));

for (const name of readdirSync(out).sort()) {
  const body = readFileSync(join(out, name));
  console.log(`dist/web/${name}: ${statSync(join(out, name)).size} bytes (${gzipSync(body, { level: 9 }).length} gzip)`);
}
