/**
 * A private `redis-server` for one suite: a free loopback port, its own temporary directory, never
 * the machine's service. It can be stopped (SIGTERM or SIGKILL) and started again on the same
 * port and directory, which is how tests take Redis away from running replicas and give it back.
 */
import { spawn, type ChildProcess } from "node:child_process";
import * as fs from "node:fs";
import * as net from "node:net";
import * as os from "node:os";
import * as path from "node:path";

export interface RedisServerOptions {
  /** `requirepass`: clients must authenticate. */
  password?: string;
  /** `appendonly yes` with this `appendfsync` policy; unset: no persistence at all. */
  appendfsync?: "always" | "everysec" | "no";
  /** Further `redis-server` arguments, as `["--name", "value"]` pairs. */
  args?: string[];
  /** Also listen with TLS (this certificate, no client certificates) on a second port. */
  tls?: { certPath: string; keyPath: string };
}

export interface RedisServer {
  readonly port: number;
  readonly dir: string;
  /** `redis://[:password@]127.0.0.1:port`. */
  readonly url: string;
  /** With `tls`: `rediss://[:password@]localhost:tlsPort`. */
  readonly tlsUrl?: string;
  /** Stops the process answering (SIGSTOP): connections stay open and nothing replies. */
  pause(): void;
  /** Lets a paused process go on (SIGCONT). */
  resume(): void;
  /** Stops the process (SIGTERM by default) and waits for its exit. */
  stop(signal?: NodeJS.Signals): Promise<void>;
  /** Starts the process again on the same port and directory (after stop). */
  start(): Promise<void>;
  /** Stops the process and removes its directory. */
  close(): Promise<void>;
  /** Everything the process printed, for failure messages. */
  output(): string;
}

const REDIS_BINARY = "redis-server";

/** A port the kernel just handed out on 127.0.0.1 and took back: free unless another process races for it. */
export async function freeLoopbackPort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const probe = net.createServer();
    probe.once("error", reject);
    probe.listen(0, "127.0.0.1", () => {
      const { port } = probe.address() as net.AddressInfo;
      probe.close(() => resolve(port));
    });
  });
}

/** Resolves once `redis-server` accepts connections on `port` (a raw PING answered with PONG or NOAUTH). */
async function waitUntilReady(port: number, child: ChildProcess, output: () => string, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (child.exitCode !== null || child.signalCode !== null) {
      throw new Error(`redis-server exited before it was ready:\n${output()}`);
    }
    const answered = await new Promise<boolean>((resolve) => {
      const socket = net.connect(port, "127.0.0.1");
      let reply = "";
      socket.setTimeout(500, () => socket.destroy());
      socket.on("connect", () => socket.write("PING\r\n"));
      socket.on("data", (chunk) => {
        reply += chunk.toString();
        if (reply.includes("\r\n")) {
          socket.destroy();
          resolve(reply.startsWith("+PONG") || reply.includes("NOAUTH"));
        }
      });
      socket.on("error", () => resolve(false));
      socket.on("close", () => resolve(false));
    });
    if (answered) return;
    if (Date.now() > deadline) throw new Error(`redis-server did not accept connections within ${timeoutMs} ms:\n${output()}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

/** Starts a private redis-server; call `close()` in afterAll. */
export async function startRedisServer(options: RedisServerOptions = {}): Promise<RedisServer> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "keypool-redis-"));
  const port = await freeLoopbackPort();
  const tlsPort = options.tls ? await freeLoopbackPort() : undefined;
  const tlsArgs = options.tls
    ? ["--tls-port", String(tlsPort), "--tls-cert-file", options.tls.certPath, "--tls-key-file", options.tls.keyPath, "--tls-auth-clients", "no"]
    : [];
  const args = [
    "--port", String(port),
    "--bind", "127.0.0.1",
    "--dir", dir,
    "--save", "",
    "--daemonize", "no",
    "--logfile", "",
    ...(options.appendfsync ? ["--appendonly", "yes", "--appendfsync", options.appendfsync] : ["--appendonly", "no"]),
    ...(options.password ? ["--requirepass", options.password] : []),
    ...tlsArgs,
    ...(options.args ?? []),
  ];
  let child: ChildProcess | undefined;
  let printed = "";
  const output = () => printed.slice(-8_000);

  const start = async () => {
    if (child && child.exitCode === null && child.signalCode === null) throw new Error("redis-server is already running");
    const started = spawn(REDIS_BINARY, args, { stdio: ["ignore", "pipe", "pipe"] });
    started.stdout!.on("data", (chunk) => (printed += chunk.toString()));
    started.stderr!.on("data", (chunk) => (printed += chunk.toString()));
    const spawnFailed = new Promise<never>((_, reject) =>
      started.once("error", (err) => reject(new Error(`cannot run ${REDIS_BINARY} (Debian package redis-server): ${err.message}`))),
    );
    child = started;
    await Promise.race([waitUntilReady(port, started, output, 10_000), spawnFailed]);
  };

  const stop = async (signal: NodeJS.Signals = "SIGTERM") => {
    const running = child;
    if (!running || running.exitCode !== null || running.signalCode !== null) return;
    const exited = new Promise<void>((resolve) => running.once("exit", () => resolve()));
    running.kill(signal);
    await exited;
  };

  await start();
  const auth = options.password ? `:${encodeURIComponent(options.password)}@` : "";
  return {
    port,
    dir,
    url: `redis://${auth}127.0.0.1:${port}`,
    ...(tlsPort !== undefined ? { tlsUrl: `rediss://${auth}localhost:${tlsPort}` } : {}),
    pause: () => child?.kill("SIGSTOP"),
    resume: () => child?.kill("SIGCONT"),
    stop,
    start,
    output,
    close: async () => {
      child?.kill("SIGCONT");
      await stop("SIGKILL");
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}
