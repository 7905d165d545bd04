/**
 * The terminal dashboard in a real pseudo-terminal (util-linux `script`), against a real server:
 * it shows keys and their changes live, says when the server is gone and comes back by itself,
 * and quits cleanly on Ctrl-C or q, restoring the terminal.
 */
import { spawn, type ChildProcessWithoutNullStreams } from "node:child_process";
import * as path from "node:path";
import { systemClock } from "../../src/domain/clock";
import { startAccessServer, type AccessServer } from "../support/access-server";
import { eventually, startWatchServer, type WatchServer } from "./watch-harness";

jest.setTimeout(90_000);

const ROOT = path.join(__dirname, "../..");
const ANSI = /\x1b\[[0-9;?]*[A-Za-z]/g;

class Terminal {
  readonly child: ChildProcessWithoutNullStreams;
  raw = "";
  readonly exited: Promise<number | null>;

  constructor(args: string[], env: NodeJS.ProcessEnv = {}) {
    const quoted = ["node", "-r", "tsx/cjs", "src/cli/watch.ts", ...args].map((a) => `'${a}'`).join(" ");
    // `stty` gives the pseudo-terminal a size, as a real one has.
    this.child = spawn("script", ["-qfec", `stty cols 120 rows 30; exec ${quoted}`, "/dev/null"], {
      cwd: ROOT,
      env: { ...process.env, TERM: "xterm-256color", NO_COLOR: "", KEYPOOL_URL: "", KEYPOOL_TOKEN: "", ...env },
    });
    this.child.stdout.on("data", (chunk: Buffer) => (this.raw += chunk.toString("utf8")));
    this.child.stderr.on("data", (chunk: Buffer) => (this.raw += chunk.toString("utf8")));
    this.exited = new Promise((resolve) => this.child.on("exit", (code) => resolve(code)));
  }

  /** The text of the last screen drawn (from the last cursor-home), without colours. */
  get screen(): string {
    const last = this.raw.lastIndexOf("\x1b[H");
    return (last >= 0 ? this.raw.slice(last) : this.raw).replace(ANSI, "").replace(/\r/g, "");
  }

  async waitFor(pattern: RegExp, timeoutMs = 30_000): Promise<void> {
    await eventually(() => pattern.test(this.screen), timeoutMs, `the screen to show ${pattern}\n--- screen:\n${this.screen}`);
  }

  kill(): void {
    if (this.child.exitCode === null) this.child.kill("SIGKILL");
  }
}

describe("keypool-watch in a terminal", () => {
  let s: WatchServer | undefined;
  let term: Terminal | undefined;
  afterEach(async () => {
    term?.kill();
    await s?.close();
    s = term = undefined;
  });

  test("shows a key's state change live, then exits with 0 on Ctrl-C and restores the terminal", async () => {
    s = await startWatchServer({ keys: 2, hub: { coalesceMs: 20 } });
    term = new Terminal(["--url", s.server.url]);
    const [first, second] = [...s.keyHashes].sort();
    await term.waitFor(new RegExp(`${first}\\s+active\\s+now`));
    expect(term.screen).toMatch(/live/);
    expect(term.screen).toMatch(/2 keys: 2 active/);
    expect(term.screen).toContain(second!);

    s.pool.disableKey(first!, "over_quota", "insufficient_quota from upstream");
    await term.waitFor(new RegExp(`${first}\\s+over quota\\s+-\\s+0\\s+0\\s+never\\s+\\S+\\s+insufficient_quota from upstream`));
    expect(term.screen).toMatch(/2 keys: 1 active, 0 cooling down, 1 not active/);

    const lease = s.pool.lease({ model: "gpt-4o" });
    await term.waitFor(new RegExp(`${lease.keyHash}\\s+active\\s+\\S+\\s+1\\s+1`));
    // Never a secret on screen.
    expect(term.raw).not.toContain(lease.key);

    term.child.stdin.write("\x03");
    expect(await term.exited).toBe(0);
    expect(term.raw.endsWith("\x1b[?25h\x1b[?1049l")).toBe(true);
  });

  test("a pool too big for one message: the table fills from the snapshot slices, then follows batched changes", async () => {
    s = await startWatchServer({ keys: 3000, hub: { coalesceMs: 100, messageBytes: 8 * 1024 } });
    term = new Terminal(["--url", s.server.url]);
    await term.waitFor(/live[\s\S]*3000 keys: 3000 active/);
    for (let i = 0; i < 5; i++) s.pool.lease({ model: "gpt-4o" });
    await term.waitFor(/3000 keys: 3000 active, 0 cooling down, 0 not active; 5 in flight/);
    term.child.stdin.write("q");
    expect(await term.exited).toBe(0);
  });

  test("filters by family, says when the server is gone, reconnects when it is back, quits on q", async () => {
    s = await startWatchServer({ keys: 2, hub: { coalesceMs: 20 } });
    s.pool.addKeys([{ provider: "anthropic", key: "sk-ant-cli-watch-0000000000000000", modelFamilies: ["claude"] }]);
    const port = s.server.port;
    term = new Terminal(["--family", "claude"], { KEYPOOL_URL: s.server.url });
    await term.waitFor(/1 key: 1 active/);
    expect(term.screen).toMatch(/families: claude/);
    expect(term.screen).toMatch(/ant-[0-9a-f]{16}\s+active/);
    expect(term.screen).not.toMatch(/oai-/);

    await s.close();
    await term.waitFor(/disconnected; retrying in[\s\S]*last error: Unavailable: keypool is shutting down/);
    // The last known table stays on screen, marked as such.
    expect(term.screen).toMatch(/last known state/);

    // A new server on the same port, with other keys: the dashboard finds it by itself.
    s = await startWatchServer({ keys: 0, port, hub: { coalesceMs: 20 } });
    const [hash] = s.pool.addKeys([{ provider: "anthropic", key: "sk-ant-cli-watch-1111111111111111", modelFamilies: ["claude"] }]).keyHashes;
    await term.waitFor(new RegExp(`live[\\s\\S]*${hash}\\s+active`));
    term.child.stdin.write("q");
    expect(await term.exited).toBe(0);
  });

  test("with tokens: KEYPOOL_TOKEN gets in; a wrong token stops with UNAUTHENTICATED and exit code 1", async () => {
    let access: AccessServer | undefined;
    try {
      access = await startAccessServer({
        env: { KEYPOOL_TOKENS: "watch:cli-watch-token-123,lease:cli-lease-token-456" },
        clock: systemClock,
        keys: [{ provider: "openai", key: "sk-cli-watch-token-test-000000000", modelFamilies: ["gpt4o"] }],
      });
      term = new Terminal([], { KEYPOOL_URL: access.url, KEYPOOL_TOKEN: "cli-watch-token-123" });
      await term.waitFor(/live[\s\S]*1 key: 1 active/);
      term.child.stdin.write("q");
      expect(await term.exited).toBe(0);

      term = new Terminal(["--url", access.url, "--token", "not-a-valid-token"]);
      expect(await term.exited).toBe(1);
      expect(term.raw).toMatch(/keypool-watch: Unauthenticated/);
      expect(term.raw).not.toContain("cli-watch-token-123");

      term = new Terminal(["--url", access.url, "--token", "cli-lease-token-456"]);
      expect(await term.exited).toBe(1);
      expect(term.raw).toMatch(/keypool-watch: PermissionDenied/);
    } finally {
      await access?.close();
    }
  });
});
