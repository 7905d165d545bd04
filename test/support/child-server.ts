/**
 * Run the built server (`node dist/src/main.js`) as a child process, as operators run it:
 * configuration through the environment, JSON logs on stdout. The port is 0 unless given; the
 * helper reads the bound port from the "keypool listening" log line.
 */
import { spawn, execFileSync, type ChildProcess } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";
import { withCheckerSafety } from "./checker-safety";

export const REPO_ROOT = path.resolve(__dirname, "../..");
export const MAIN_JS = path.join(REPO_ROOT, "dist/src/main.js");

export interface ChildServer {
  child: ChildProcess;
  port: number;
  url: string;
  /** Every JSON log line so far. */
  logs: Record<string, unknown>[];
  /** Raw stdout and stderr so far. */
  output(): { stdout: string; stderr: string };
  /** Resolves with the exit code (or signal) once the process has exited. */
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** Sends `signal` (default SIGTERM) and waits for the exit. */
  stop(signal?: NodeJS.Signals): Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

const sleepSync = (ms: number) => Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);

/**
 * Builds dist/ when it is missing or older than its sources, with the script `npm start` uses
 * (npm test builds before jest anyway). A lock directory keeps parallel jest workers from
 * compiling over each other.
 */
export function ensureBuilt(): void {
  fs.mkdirSync(path.join(REPO_ROOT, "dist"), { recursive: true });
  const lock = path.join(REPO_ROOT, "dist/.build-lock");
  const deadline = Date.now() + 180_000;
  for (;;) {
    try {
      fs.mkdirSync(lock);
      break;
    } catch {
      if (Date.now() > deadline) throw new Error(`${lock} is held for too long; remove it if no build runs`);
      sleepSync(200);
    }
  }
  try {
    execFileSync("sh", [path.join(REPO_ROOT, "scripts/build-if-stale.sh")], { cwd: REPO_ROOT, stdio: "pipe" });
  } catch (err) {
    // Type errors still emit JavaScript; the typecheck step of npm test reports them.
    if (!fs.existsSync(MAIN_JS)) throw err;
  } finally {
    fs.rmdirSync(lock);
  }
}

/** Spawns the server and waits until it listens (or rejects with its output if it exits first). */
export async function spawnServer(env: Record<string, string> = {}, timeoutMs = 30_000): Promise<ChildServer> {
  ensureBuilt();
  return spawnKeypool({ command: process.execPath, args: [MAIN_JS], env, timeoutMs });
}

export interface KeypoolCommand {
  /** What an operator would type: `npm start`, an installed bin, `node dist/src/main.js`. */
  command: string;
  args?: string[];
  cwd?: string;
  env?: Record<string, string>;
  timeoutMs?: number;
}

/**
 * Runs a command that starts keypool and waits until keypool listens. `child` is the command's
 * own process (npm, say), which need not be keypool's: the "keypool listening" line has its pid.
 */
export async function spawnKeypool({ command, args = [], cwd = REPO_ROOT, env = {}, timeoutMs = 30_000 }: KeypoolCommand): Promise<ChildServer> {
  const child = spawn(command, args, {
    cwd,
    // KEYPOOL_STATE=memory unless a test asks for a file: parallel tests must not share ./data.
    env: withCheckerSafety({ PATH: process.env.PATH ?? "", HOME: process.env.HOME ?? "/tmp", KEYPOOL_PORT: "0", KEYPOOL_LOG_LEVEL: "info", KEYPOOL_STATE: "memory", ...env }),
    stdio: ["ignore", "pipe", "pipe"],
  });
  let stdout = "";
  let stderr = "";
  const logs: Record<string, unknown>[] = [];
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.once("exit", (code, signal) => resolve({ code, signal })),
  );
  const port = await new Promise<number>((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill("SIGKILL");
      reject(new Error(`server did not start in ${timeoutMs} ms:\n${stdout}\n${stderr}`));
    }, timeoutMs);
    let pending = "";
    child.stdout!.setEncoding("utf8").on("data", (chunk: string) => {
      stdout += chunk;
      pending += chunk;
      let newline: number;
      while ((newline = pending.indexOf("\n")) >= 0) {
        const line = pending.slice(0, newline);
        pending = pending.slice(newline + 1);
        try {
          const entry = JSON.parse(line) as Record<string, unknown>;
          logs.push(entry);
          if (entry.msg === "keypool listening") {
            clearTimeout(timer);
            resolve(entry.port as number);
          }
        } catch {
          // not a JSON log line
        }
      }
    });
    child.stderr!.setEncoding("utf8").on("data", (chunk: string) => (stderr += chunk));
    void exited.then(({ code, signal }) => {
      clearTimeout(timer);
      reject(new Error(`server exited (${code ?? signal}) before listening:\n${stdout}\n${stderr}`));
    });
  });
  return {
    child,
    port,
    url: `http://127.0.0.1:${port}`,
    logs,
    output: () => ({ stdout, stderr }),
    exited,
    async stop(signal: NodeJS.Signals = "SIGTERM") {
      if (child.exitCode === null && child.signalCode === null) child.kill(signal);
      return exited;
    },
  };
}

/** Runs the built server expecting it to fail at start; resolves with its exit code and output. */
export async function runServerExpectingFailure(
  env: Record<string, string>,
): Promise<{ code: number | null; stdout: string; stderr: string }> {
  ensureBuilt();
  const child = spawn(process.execPath, [MAIN_JS], {
    cwd: REPO_ROOT,
    env: withCheckerSafety({ PATH: process.env.PATH ?? "", KEYPOOL_PORT: "0", KEYPOOL_STATE: "memory", ...env }),
    stdio: ["ignore", "pipe", "pipe"],
  });
  let stdout = "";
  let stderr = "";
  child.stdout!.setEncoding("utf8").on("data", (c: string) => (stdout += c));
  child.stderr!.setEncoding("utf8").on("data", (c: string) => (stderr += c));
  const timer = setTimeout(() => child.kill("SIGKILL"), 10_000);
  const code = await new Promise<number | null>((resolve) => child.once("exit", (c) => resolve(c)));
  clearTimeout(timer);
  return { code, stdout, stderr };
}
