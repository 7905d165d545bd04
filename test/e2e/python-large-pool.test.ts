/**
 * Every message fits a standard client's 4 MiB limit whatever the pool's size: a grpcio client
 * (gen/python, Debian's /usr/bin/python3) with its default receive limit reads all ListKeys pages
 * and a sliced WatchKeys snapshot of 100,000 keys with five families and an organization each
 * (about 7.7 MB as one message).
 */
import { execFile } from "node:child_process";
import * as path from "node:path";
import { promisify } from "node:util";
import { startWatchServer, type WatchServer } from "./watch-harness";

jest.setTimeout(240_000);

const run = promisify(execFile);
const ROOT = path.resolve(__dirname, "../..");
const KEYS = 100_000;
const FAMILIES = ["turbo", "gpt4", "gpt4o", "gpt41", "o3"];

describe("a 4 MiB-limited grpcio client on a pool of 100,000 keys", () => {
  let s: WatchServer;
  beforeAll(async () => {
    s = await startWatchServer({ keys: 0 });
    for (let start = 0; start < KEYS; start += 10_000) {
      s.pool.addKeys(
        Array.from({ length: 10_000 }, (_, i) => ({
          provider: "openai" as const,
          key: `sk-large-pool-${String(start + i).padStart(8, "0")}-${"x".repeat(24)}`,
          modelFamilies: FAMILIES,
          organizationId: `org-${String(start + i).padStart(8, "0")}-example`,
        })),
      );
    }
  });
  afterAll(() => s.close());

  it("reads every ListKeys page and the sliced snapshot, with and without batch", async () => {
    const { stdout, stderr } = await run("/usr/bin/python3", [path.join(__dirname, "python/large_pool_reader.py"), `127.0.0.1:${s.server.port}`], {
      env: { PATH: process.env.PATH ?? "", PYTHONPATH: `${path.join(ROOT, "gen/python")}:${path.join(ROOT, "examples")}`, PYTHONDONTWRITEBYTECODE: "1" },
      timeout: 200_000,
      maxBuffer: 1024 * 1024,
    });
    process.stderr.write(stderr);
    const result = JSON.parse(stdout.trim()) as Record<string, unknown>;
    expect(result).toEqual({
      listed: KEYS,
      listed_distinct: KEYS,
      listed_sorted: true,
      families: [5],
      with_org: KEYS,
      plain: { slices: expect.any(Number), keys: KEYS, same_as_listed: true },
      batch: { slices: expect.any(Number), keys: KEYS, same_as_listed: true },
    });
    expect((result.plain as { slices: number }).slices).toBeGreaterThan(1);
  });
});
