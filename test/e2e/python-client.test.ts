/**
 * The generated Python client (gen/python, grpcio; the interpreter from test/support/python.ts) against a real
 * server: examples/python_client.py leases, reports, records usage, lists keys, and decodes the
 * RetryInfo of RESOURCE_EXHAUSTED from grpc-status-details-bin, on either port.
 */
import { execFile } from "node:child_process";
import * as path from "node:path";
import { promisify } from "node:util";
import { PORTS, portOf } from "../support/ports";
import { findPython } from "../support/python";
import { startTestServer, testKey, type TestServer } from "../support/test-server";

const run = promisify(execFile);
const ROOT = path.resolve(__dirname, "../..");
const SECRET = testKey("openai", 3);

describe.each(PORTS)("generated Python client on the %s port", (port) => {
  let t: TestServer;
  let python: string;
  beforeAll(async () => {
    python = findPython();
    t = await startTestServer({ keys: [{ provider: "openai", key: SECRET }] });
  });
  afterAll(() => t?.close());

  it("runs examples/python_client.py end to end", async () => {
    const { stdout } = await run(python, [path.join(ROOT, "examples/python_client.py"), `127.0.0.1:${portOf(t, port)}`, "gpt-4o-mini"], {
      env: { PATH: process.env.PATH ?? "", PYTHONPATH: path.join(ROOT, "gen/python"), PYTHONDONTWRITEBYTECODE: "1" },
      timeout: 20_000,
    });
    const steps = stdout.trim().split("\n").map((line) => JSON.parse(line) as Record<string, unknown>);
    const byStep = Object.fromEntries(steps.map((s) => [s.step, s]));
    const keyHash = t.pool.listKeys()[0].keyHash;

    expect(byStep.lease).toEqual({ step: "lease", key_hash: keyHash, family: "turbo" });
    // 6m0s is capped at KEYPOOL_MAX_RESET (10 s).
    expect(byStep.report).toEqual({ step: "report", ready_at: t.clock.now() + 10_000 });
    expect(byStep.usage).toEqual({ step: "usage" });
    expect(byStep.list).toEqual({
      step: "list",
      keys: [{ key_hash: keyHash, prompt_count: 1, usage: { turbo: { input_tokens: 120, output_tokens: 30 } } }],
    });
    expect(byStep.busy).toEqual({ step: "busy", code: "RESOURCE_EXHAUSTED", retry_delay_s: 10 });
    expect(stdout).not.toContain(SECRET);
  });
});
