/**
 * The built keypool-watch against a TLS server with a private certificate: `--cacert` (and
 * `--servername`) make it trusted; without them the certificate error stops the program at once
 * with a message saying what to pass, instead of being retried as if the network had failed. And
 * piped into a reader that goes away (`| head`), it exits quietly.
 */
import { execFileSync, spawn } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { KeyPoolService } from "../../gen/ts/keypool/v1/keypool_pb";
import { REPO_ROOT, ensureBuilt, spawnServer, type ChildServer } from "../support/child-server";
import { createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";

const WATCH_JS = path.join(REPO_ROOT, "dist/src/cli/watch.js");

jest.setTimeout(60_000);

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
  ms: number;
}

/** Runs keypool-watch with stdout piped; `until` ends it (SIGTERM) once its output matches. */
function watch(args: string[], until?: RegExp): Promise<Run> {
  const started = Date.now();
  const child = spawn(process.execPath, [WATCH_JS, ...args], {
    env: { PATH: process.env.PATH ?? "", KEYPOOL_URL: "", KEYPOOL_TOKEN: "" },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let stdout = "";
  let stderr = "";
  const killer = setTimeout(() => child.kill("SIGKILL"), 20_000);
  child.stdout.setEncoding("utf8").on("data", (chunk: string) => {
    stdout += chunk;
    if (until?.test(stdout)) child.kill("SIGTERM");
  });
  child.stderr.setEncoding("utf8").on("data", (chunk: string) => (stderr += chunk));
  return new Promise((resolve) =>
    child.once("exit", (code) => {
      clearTimeout(killer);
      resolve({ code, stdout, stderr, ms: Date.now() - started });
    }),
  );
}

let dir: string;
let server: ChildServer;
let caFile: string;
let keyHash: string;

beforeAll(async () => {
  ensureBuilt();
  dir = fs.mkdtempSync(path.join(os.tmpdir(), "keypool-watch-tls-"));
  caFile = path.join(dir, "cert.pem");
  const keyFile = path.join(dir, "key.pem");
  // Issued for a name only: the client must be told which name to expect at 127.0.0.1.
  execFileSync(
    "openssl",
    ["req", "-x509", "-nodes", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-days", "1",
     "-subj", "/CN=keypool.internal", "-addext", "subjectAltName=DNS:keypool.internal",
     "-keyout", keyFile, "-out", caFile],
    { stdio: ["ignore", "ignore", "pipe"] },
  );
  server = await spawnServer({ KEYPOOL_TLS_CERT: caFile, KEYPOOL_TLS_KEY: keyFile, OPENAI_KEY: "sk-watch-tls-test-0001" });
  keyHash = (await trustingClient().listKeys({})).keys[0]!.keyHash;
}, 180_000);

afterAll(async () => {
  await server?.stop();
  fs.rmSync(dir, { recursive: true, force: true });
});

const trustingClient = () =>
  createClient(
    KeyPoolService,
    createGrpcTransport({ baseUrl: url(), nodeOptions: { ca: fs.readFileSync(caFile), servername: "keypool.internal" } }),
  );
const url = () => `https://127.0.0.1:${server.port}`;

it("with --cacert and --servername shows the server's keys", async () => {
  const run = await watch(["--url", url(), "--cacert", caFile, "--servername", "keypool.internal"], new RegExp(keyHash));
  expect(run.stderr).toBe("");
  expect(run.stdout).toContain(keyHash);
  expect(run.stdout).toMatch(/live/);
  expect(run.code).toBe(0);
});

it("without --cacert stops at once with exit code 1, saying the certificate is not trusted and what to pass", async () => {
  const run = await watch(["--url", url()]);
  expect(run.code).toBe(1);
  expect(run.ms).toBeLessThan(10_000);
  expect(run.stderr).toMatch(/the server's TLS certificate is not accepted \(DEPTH_ZERO_SELF_SIGNED_CERT/);
  expect(run.stderr).toContain("--cacert FILE");
});

it("with --cacert but the wrong name stops too, pointing at --servername", async () => {
  const run = await watch(["--url", url(), "--cacert", caFile]);
  expect(run.code).toBe(1);
  expect(run.stderr).toMatch(/ERR_TLS_CERT_ALTNAME_INVALID/);
  expect(run.stderr).toContain("--servername NAME");
});

it("an unreadable --cacert file is a usage error naming the file", async () => {
  const missing = path.join(dir, "missing.pem");
  const run = await watch(["--url", url(), "--cacert", missing]);
  expect(run.code).toBe(2);
  expect(run.stderr).toContain(`--cacert ${missing}: cannot read it (ENOENT)`);
});

it("exits quietly with 0 when the reader of its output goes away (| head)", async () => {
  const child = spawn(
    process.execPath,
    [WATCH_JS, "--url", url(), "--cacert", caFile, "--servername", "keypool.internal"],
    { env: { PATH: process.env.PATH ?? "" }, stdio: ["ignore", "pipe", "pipe"] },
  );
  let stderr = "";
  child.stderr.setEncoding("utf8").on("data", (chunk: string) => (stderr += chunk));
  const exited = new Promise<number | null>((resolve) => child.once("exit", resolve));
  const killer = setTimeout(() => child.kill("SIGKILL"), 30_000);
  await new Promise((resolve) => child.stdout.once("data", resolve));
  child.stdout.destroy(); // what `head -n 1` does after its line
  // A change makes it write again, into the closed pipe.
  await trustingClient().lease({ model: "gpt-3.5-turbo" });
  const code = await exited;
  clearTimeout(killer);
  expect(code).toBe(0);
  expect(stderr).toBe("");
});
