// The compiler writes dist/ without execute bits, and `npm ci` marks a project's own bins only
// when they already exist: after every build, each bin package.json names is made executable so
// that `npx keypool-watch` (and the other bins) run from a fresh clone.
const fs = require("node:fs");
const path = require("node:path");

const root = path.join(__dirname, "..");
const { bin } = JSON.parse(fs.readFileSync(path.join(root, "package.json"), "utf8"));
for (const file of Object.values(bin)) fs.chmodSync(path.join(root, file), 0o755);
