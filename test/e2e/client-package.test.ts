/**
 * clients/ts is its own npm package: `npm pack` builds it (generated code included), and the
 * tarball, installed beside nothing but its declared dependencies, works against a real keypool
 * and type-checks in a consumer's TypeScript.
 */
import { execFile } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { promisify } from "node:util";
import { startKeypoolAndUpstream, type KeypoolAndUpstream } from "../support/keypool-and-upstream";
import { testKey } from "../support/test-server";

jest.setTimeout(120_000);

const run = promisify(execFile);
const ROOT = path.resolve(__dirname, "../..");
const PACKAGE_DIR = path.join(ROOT, "clients/ts");
const SECRET = testKey("openai", 7);

let env: KeypoolAndUpstream;
let tmp: string;

beforeAll(async () => {
  env = await startKeypoolAndUpstream([{ provider: "openai", key: SECRET }]);
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), "keypool-client-pack-"));
});
afterAll(async () => {
  await env.close();
  fs.rmSync(tmp, { recursive: true, force: true });
});

it("npm pack makes a package that leases, reports and records usage with only its declared dependencies", async () => {
  const { stdout } = await run("npm", ["pack", "--json", "--pack-destination", tmp], { cwd: PACKAGE_DIR, timeout: 100_000 });
  const [packed] = JSON.parse(stdout.slice(stdout.indexOf("["))) as { filename: string; files: { path: string }[] }[];
  const files = packed.files.map((f) => f.path);
  expect(files).toEqual(expect.arrayContaining(["README.md", "package.json", "dist/clients/ts/src/index.js", "dist/clients/ts/src/index.d.ts", "dist/gen/ts/keypool/v1/keypool_pb.js"]));
  expect(files.filter((f) => !f.startsWith("dist/") && f !== "README.md" && f !== "package.json")).toEqual([]);

  // Install it by hand: the tarball, and its declared dependencies (the repository's copies of
  // the same pinned versions), nothing else.
  const modules = path.join(tmp, "node_modules");
  fs.mkdirSync(path.join(modules, "keypool-client"), { recursive: true });
  await run("tar", ["-xzf", path.join(tmp, packed.filename), "-C", path.join(modules, "keypool-client"), "--strip-components=1"]);
  const manifest = JSON.parse(fs.readFileSync(path.join(modules, "keypool-client/package.json"), "utf8")) as { dependencies: Record<string, string> };
  for (const [name, version] of Object.entries(manifest.dependencies)) {
    const installed = JSON.parse(fs.readFileSync(path.join(ROOT, "node_modules", name, "package.json"), "utf8")) as { version: string };
    expect({ name, version: installed.version }).toEqual({ name, version });
    fs.mkdirSync(path.dirname(path.join(modules, name)), { recursive: true });
    fs.symlinkSync(path.join(ROOT, "node_modules", name), path.join(modules, name), "dir");
  }

  const consumer = `
    const { KeyPoolHelper, usageFromOpenAI } = require("keypool-client");
    const helper = new KeyPoolHelper({ baseUrl: process.argv[2] });
    helper
      .withKey({ model: "gpt-4o-mini" }, async (key, { signal }) => {
        const response = await fetch(process.argv[3] + "/v1/chat/completions", {
          method: "POST",
          headers: { authorization: "Bearer " + key.key, "content-type": "application/json" },
          body: JSON.stringify({ model: "gpt-4o-mini", messages: [{ role: "user", content: "hi" }] }),
          signal,
        });
        const body = await response.json();
        return { response, usage: usageFromOpenAI(body.usage), value: body.usage };
      })
      .then(async (result) => {
        const { keys } = await helper.client.listKeys({});
        console.log(JSON.stringify({ result, usage: keys[0].usage, inFlight: keys[0].inFlight }, (k, v) => (typeof v === "bigint" ? Number(v) : v)));
      });
  `;
  fs.writeFileSync(path.join(tmp, "consumer.js"), consumer);
  const out = await run(process.execPath, ["consumer.js", env.keypool.url, env.upstream.url], { cwd: tmp, timeout: 30_000, env: { PATH: process.env.PATH ?? "" } });
  const printed = JSON.parse(out.stdout) as { result: { status: number; value: { prompt_tokens: number; completion_tokens: number } }; usage: Record<string, { inputTokens: number; outputTokens: number }>; inFlight: number };
  expect(printed.result.status).toBe(200);
  expect(printed.usage.turbo).toMatchObject({ inputTokens: printed.result.value.prompt_tokens, outputTokens: printed.result.value.completion_tokens });
  expect(printed.inFlight).toBe(0);
  expect(out.stdout).not.toContain(SECRET);

  // The declarations are enough for a consumer's TypeScript: a wrong call shape does not compile.
  fs.writeFileSync(
    path.join(tmp, "typed.ts"),
    `import { KeyPoolHelper, type LeasedKey } from "keypool-client";
     const helper = new KeyPoolHelper({ baseUrl: "http://127.0.0.1:1" });
     export const ok = (k: LeasedKey) => helper.withKey({ model: "gpt-4o-mini", maxWaitMs: 10 }, async () => ({ response: new Response(k.keyHash), value: 1 }));
     // @ts-expect-error: the function must return the upstream response
     export const bad = () => helper.withKey({ model: "gpt-4o-mini" }, async () => ({ value: 1 }));
    `,
  );
  await run(
    process.execPath,
    [path.join(ROOT, "node_modules/typescript/bin/tsc"), "--noEmit", "--strict", "--skipLibCheck", "--module", "commonjs", "--target", "ES2022", "--lib", "ES2022,DOM", "--types", "node", "--typeRoots", path.join(ROOT, "node_modules/@types"), "typed.ts"],
    { cwd: tmp, timeout: 60_000 },
  );
});
