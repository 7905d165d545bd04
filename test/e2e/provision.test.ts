/**
 * scripts/provision.sh, which `npm test` runs first: with every package present it does nothing;
 * run by a user who cannot install, it fails with one line naming the exact command.
 */
import { execFile } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { promisify } from "node:util";
import { REPO_ROOT } from "../support/child-server";

const run = promisify(execFile);
const SCRIPT = path.join(REPO_ROOT, "scripts/provision.sh");

let dir: string;
beforeAll(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), "keypool-provision-"));
  fs.chmodSync(dir, 0o755);
});
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

function list(name: string, text: string): string {
  const file = path.join(dir, name);
  fs.writeFileSync(file, text, { mode: 0o644 });
  return file;
}

it("does nothing, quietly, when every listed package is installed (the list the suite uses is)", async () => {
  const result = await run("sh", [SCRIPT]);
  expect(result).toEqual({ stdout: "", stderr: "" });
});

it("as a user who cannot install, fails with one line naming the exact apt-get command", async () => {
  const file = list("packages.txt", "# comment\nopenssl   # present\nkeypool-no-such-package-a\n\nkeypool-no-such-package-b # missing\n");
  // setpriv (util-linux) runs the script as nobody, as a contributor without root would.
  const failed = await run("setpriv", ["--reuid=65534", "--regid=65534", "--clear-groups", "sh", SCRIPT, file]).then(
    () => undefined,
    (err: { code: number; stdout: string; stderr: string }) => err,
  );
  expect(failed?.code).toBe(1);
  expect(failed?.stdout).toBe("");
  expect(failed?.stderr).toBe(
    "provision: npm test needs Debian packages that are missing; run: sudo apt-get install -y --no-install-recommends keypool-no-such-package-a keypool-no-such-package-b\n",
  );
});
