/**
 * The README's recipes, run as written. A fenced `sh` block preceded by `<!-- recipe: NAME -->`
 * belongs to recipe NAME; `<!-- recipe: NAME server -->` marks the one command that starts
 * keypool (`npm start`), which runs in the background until the recipe's other blocks, in README
 * order, have run in the same bash session (so `export`s carry over, as they do for a reader who
 * pastes them into one shell). Every command must succeed (`set -euo pipefail`).
 *
 * Two things differ from a reader's machine, and only these: the port (50051 becomes a free one,
 * in the text and through KEYPOOL_PORT, since tests run side by side) and /etc/keypool (a
 * temporary directory). The state file is a temporary one through KEYPOOL_STATE, and `python3` is
 * an interpreter with grpcio (test/support/python.ts), as the README asks of the reader.
 */
import { execFileSync, spawn } from "node:child_process";
import * as fs from "node:fs";
import * as net from "node:net";
import * as os from "node:os";
import * as path from "node:path";
import { REPO_ROOT, ensureBuilt } from "../support/child-server";
import { withCheckerSafety } from "../support/checker-safety";
import { findPython } from "../support/python";

jest.setTimeout(180_000);

interface Block {
  server: boolean;
  text: string;
}

function recipes(readme: string): Map<string, Block[]> {
  const found = new Map<string, Block[]>();
  const marker = /<!-- recipe: ([a-z0-9-]+)( server)? -->\n```sh\n([\s\S]*?)```/g;
  for (const [, name, server, text] of readme.matchAll(marker)) {
    if (!found.has(name!)) found.set(name!, []);
    found.get(name!)!.push({ server: Boolean(server), text: text! });
  }
  return found;
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer().listen(0, "127.0.0.1", () => {
      const { port } = server.address() as net.AddressInfo;
      server.close(() => resolve(port));
    });
    server.on("error", reject);
  });
}

/** The bash session for one recipe: blocks in order, the server block in the background. */
function script(blocks: Block[], port: number, etc: string, log: string): string {
  const adapt = (text: string) => text.replaceAll("50051", String(port)).replaceAll("/etc/keypool", etc);
  const lines = ["set -euo pipefail", "server=", "trap '[ -n \"$server\" ] && kill -TERM \"$server\" && wait \"$server\"' EXIT"];
  for (const block of blocks) {
    if (block.server) {
      const command = adapt(block.text).trim();
      expect(command.split("\n")).toHaveLength(1); // one command, so that $! is keypool's launcher
      lines.push(`${command} > ${log} 2>&1 &`, "server=$!");
      // Until /healthz answers (-k: only this wait skips the certificate check).
      lines.push(
        `for i in $(seq 300); do curl -fsk -o /dev/null http://127.0.0.1:${port}/healthz || curl -fsk -o /dev/null https://127.0.0.1:${port}/healthz && break; kill -0 "$server" || { cat ${log}; exit 1; }; sleep 0.1; done`,
      );
    } else {
      lines.push(adapt(block.text));
    }
  }
  return lines.join("\n");
}

const all = recipes(fs.readFileSync(path.join(REPO_ROOT, "README.md"), "utf8"));
let python: string;

beforeAll(() => {
  ensureBuilt();
  python = findPython();
}, 180_000);

it("the README marks the recipes this suite runs", () => {
  expect([...all.keys()].sort()).toEqual(["first-session", "python", "tls", "tokens", "typescript"]);
  for (const [name, blocks] of all) expect({ name, servers: blocks.filter((b) => b.server).length }).toEqual({ name, servers: 1 });
});

describe.each([...all.keys()])("recipe %s", (name) => {
  it("runs as written and keypool stops cleanly after it", async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), `keypool-recipe-${name}-`));
    try {
      const etc = path.join(dir, "etc-keypool");
      const bin = path.join(dir, "bin");
      fs.mkdirSync(bin);
      const interpreter = python.includes("/") ? python : execFileSync("sh", ["-c", `command -v ${python}`], { encoding: "utf8" }).trim();
      fs.symlinkSync(interpreter, path.join(bin, "python3"));
      const log = path.join(dir, "server.log");
      const port = await freePort();
      fs.writeFileSync(path.join(dir, "recipe.sh"), script(all.get(name)!, port, etc, log));
      const result = await new Promise<{ code: number | null; output: string }>((resolve) => {
        const child = spawn("bash", [path.join(dir, "recipe.sh")], {
          cwd: REPO_ROOT,
          // The keypool a recipe starts never checks keys against a real upstream.
          env: withCheckerSafety({
            PATH: `${bin}:${process.env.PATH ?? ""}`,
            HOME: process.env.HOME ?? dir,
            KEYPOOL_STATE: path.join(dir, "keypool.db"),
            KEYPOOL_PORT: String(port),
            TMPDIR: dir,
          }),
          stdio: ["ignore", "pipe", "pipe"],
        });
        let output = "";
        child.stdout.on("data", (chunk: Buffer) => (output += chunk.toString()));
        child.stderr.on("data", (chunk: Buffer) => (output += chunk.toString()));
        child.on("exit", (code) => resolve({ code, output }));
      });
      // On failure, the recipe's output and keypool's log say why.
      const serverLog = fs.existsSync(log) ? fs.readFileSync(log, "utf8") : "";
      expect(result.code === 0 ? "exit 0" : `exit ${result.code}\n${result.output}\n--- keypool's log:\n${serverLog}`).toBe("exit 0");
      expect(serverLog).toMatch(/"msg":"stopped"/);
      // What each recipe is for, seen in its output.
      const expected: Record<string, RegExp[]> = {
        "first-session": [/SERVING/, /"keyHash": "oai-[0-9a-f]{16}"/],
        tokens: [/"leaseId"/, /"added": 1/, /"state": "KEY_STATE_DISABLED"/, /"state": "KEY_STATE_ACTIVE"/],
        tls: [/SERVING/, /"leaseId"/, /"keys"/, /keypool-watch {2}https:\/\/127\.0\.0\.1/],
        typescript: [/"family": "turbo"/, /"retryAfterMs": \d+/],
        python: [/"family": "turbo"/, /"step": "busy", "code": "RESOURCE_EXHAUSTED"/],
      };
      for (const pattern of expected[name] ?? []) expect(result.output).toMatch(pattern);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
