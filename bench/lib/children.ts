/**
 * Child processes of the benchmark: started pinned to a CPU set with `taskset` (when the machine
 * has more than one core), tracked, and killed when the run ends however it ends, so that no
 * server or load generator outlives `npm run bench`.
 */
import { ChildProcess, spawn, SpawnOptions } from "node:child_process";
import * as os from "node:os";
import { existsSync, readFileSync } from "node:fs";

const live = new Set<ChildProcess>();

function killAll(): void {
  for (const child of live) {
    if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
  }
  live.clear();
}
process.on("exit", killAll);
for (const signal of ["SIGINT", "SIGTERM"] as const) {
  process.on(signal, () => {
    killAll();
    process.exit(130);
  });
}

/** Which cores the server and the load generator get: different ones when there are two or more. */
export interface CoreLayout {
  server: string | undefined;
  load: string | undefined;
  note: string;
}

export function coreLayout(): CoreLayout {
  const cores = os.availableParallelism ? os.availableParallelism() : os.cpus().length;
  if (!existsSync("/usr/bin/taskset") || cores < 2) {
    return { server: undefined, load: undefined, note: `not pinned (${cores} core(s) or no taskset)` };
  }
  // Core 0 for the process measured, the rest for whoever generates the load.
  const load = cores === 2 ? "1" : `1-${cores - 1}`;
  return { server: "0", load, note: `server on core 0, load on core(s) ${load} (taskset)` };
}

export interface Started {
  child: ChildProcess;
  /** Everything the child wrote to stdout so far. */
  stdout(): string;
  stderr(): string;
  /** Resolves with the exit code (or signal name). */
  exited: Promise<number | string>;
  kill(): Promise<void>;
}

export interface StartOptions extends SpawnOptions {
  /**
   * Runs the child under `nice -n niceness`: a load generator that shares a core with the
   * process taking measurements yields the core to it, so the measurement is not the scheduler's.
   */
  niceness?: number;
}

/** Spawns `command args` on `cpus` (a taskset list) or anywhere when undefined. */
export function start(command: string, args: string[], cpus: string | undefined, options: StartOptions = {}): Started {
  const { niceness, ...spawnOptions } = options;
  const [niced, nicedArgs] = niceness !== undefined ? ["nice", ["-n", String(niceness), command, ...args]] : [command, args];
  const [cmd, argv] = cpus !== undefined ? ["/usr/bin/taskset", ["-c", cpus, niced, ...nicedArgs]] : [niced, nicedArgs];
  const child = spawn(cmd, argv, { stdio: ["ignore", "pipe", "pipe"], ...spawnOptions });
  live.add(child);
  let out = "";
  let err = "";
  child.stdout?.setEncoding("utf8").on("data", (d: string) => {
    out += d;
    if (out.length > 4_000_000) out = out.slice(-2_000_000);
  });
  child.stderr?.setEncoding("utf8").on("data", (d: string) => {
    err += d;
    if (err.length > 1_000_000) err = err.slice(-500_000);
  });
  const exited = new Promise<number | string>((resolve) => {
    child.on("exit", () => live.delete(child));
    // "close", not "exit": only then has all of the child's output been read.
    child.on("close", (code, signal) => {
      live.delete(child);
      resolve(code ?? signal ?? "unknown");
    });
    child.on("error", (e) => {
      live.delete(child);
      err += String(e);
      resolve("spawn-error");
    });
  });
  return {
    child,
    stdout: () => out,
    stderr: () => err,
    exited,
    async kill() {
      if (child.exitCode !== null || child.signalCode !== null) return;
      child.kill("SIGTERM");
      const timer = setTimeout(() => child.kill("SIGKILL"), 3000);
      await exited;
      clearTimeout(timer);
    },
  };
}

/** Runs a command to completion and returns its output; rejects on a non-zero exit. */
export async function run(command: string, args: string[], cpus: string | undefined, options: SpawnOptions = {}): Promise<{ stdout: string; stderr: string }> {
  const p = start(command, args, cpus, options);
  const code = await p.exited;
  if (code !== 0) {
    throw new Error(`${command} ${args.join(" ")} exited with ${code}:\n${p.stderr().slice(-2000)}\n${p.stdout().slice(-2000)}`);
  }
  return { stdout: p.stdout(), stderr: p.stderr() };
}

/** Resident set size of a live process in MiB, from /proc. */
export function rssMiB(pid: number): number {
  const status = readFileSync(`/proc/${pid}/status`, "utf8");
  const m = /VmRSS:\s+(\d+) kB/.exec(status);
  return m ? Number(m[1]) / 1024 : NaN;
}

/** CPU time (user + system) a live process has used, in ms, from /proc (clock ticks of 10 ms). */
export function cpuMs(pid: number): number {
  return statCpuMs(`/proc/${pid}/stat`);
}

/**
 * CPU time of a process's main thread alone (its JavaScript, and the GC work done on it), in
 * milliseconds: the rest of cpuMs is other threads (V8's GC helpers, a worker, libuv's pool).
 */
export function mainThreadCpuMs(pid: number): number {
  return statCpuMs(`/proc/${pid}/task/${pid}/stat`);
}

function statCpuMs(file: string): number {
  const stat = readFileSync(file, "utf8");
  // The command name may hold spaces: fields count from the closing parenthesis.
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return (Number(fields[11]) + Number(fields[12])) * 10;
}

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));
