/**
 * keypool's version: the one in package.json, read at run time so that the number lives in one
 * place. The file is found by walking up from this module, which sits at src/ when run from the
 * sources (tests) and at dist/src/ when built or installed from the package.
 */
import * as fs from "node:fs";
import * as path from "node:path";

function findVersion(): string {
  for (let dir = __dirname; ; dir = path.dirname(dir)) {
    const file = path.join(dir, "package.json");
    if (fs.existsSync(file)) {
      const pkg = JSON.parse(fs.readFileSync(file, "utf8")) as { name?: string; version?: string };
      if (pkg.name === "keypool" && pkg.version) return pkg.version;
    }
    if (path.dirname(dir) === dir) return "unknown";
  }
}

export const VERSION = findVersion();
