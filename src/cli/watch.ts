#!/usr/bin/env node
/**
 * keypool-watch: a live table of every key in a keypool server, refreshed in place.
 *
 * It holds one WatchKeys stream (batched: one message per coalescing window); each stream begins
 * with a snapshot, in slices, so a reconnect simply starts over. On UNAVAILABLE (server
 * restarting, network gone) it retries with capped, jittered exponential backoff and says so on
 * the status line; errors that a retry cannot fix (bad token, wrong role, bad filter) end the
 * program with the server's message.
 */
import * as fs from "node:fs";
import { Code, ConnectError, createClient, type Interceptor, type Transport } from "@connectrpc/connect";
import { createConnectTransport, createGrpcTransport, createGrpcWebTransport } from "@connectrpc/connect-node";
import { KeyPoolService } from "../../gen/ts/keypool/v1/keypool_pb";
import { describeFilter, parseWatchArgs, UsageError, USAGE, type WatchArgs } from "./watch-args";
import { renderScreen, WatchView, type ConnectionState } from "./watch-view";
import { VERSION } from "../version";

/** Errors a reconnect cannot fix. */
const FATAL = new Set([Code.Unauthenticated, Code.PermissionDenied, Code.InvalidArgument, Code.Unimplemented]);
const BACKOFF_FIRST_MS = 250;
const BACKOFF_MAX_MS = 10_000;
/** No message (not even a heartbeat) for this long: the connection is presumed dead. */
const IDLE_TIMEOUT_MS = 120_000;
/** Redraws at most this often while events pour in. */
const RENDER_INTERVAL_MS = 100;

/** Capped exponential backoff with jitter: attempt 0 waits 125–250 ms, then doubling up to 10 s. */
export function backoffMs(attempt: number, random: () => number = Math.random): number {
  const ceiling = Math.min(BACKOFF_MAX_MS, BACKOFF_FIRST_MS * 2 ** Math.min(attempt, 16));
  return Math.round(ceiling * (0.5 + random() / 2));
}

/**
 * Node's codes for a server certificate that does not verify. No retry fixes them: the program
 * stops and says how to trust the server, instead of reconnecting forever.
 */
const CERTIFICATE_ERRORS = new Set([
  "DEPTH_ZERO_SELF_SIGNED_CERT",
  "SELF_SIGNED_CERT_IN_CHAIN",
  "UNABLE_TO_VERIFY_LEAF_SIGNATURE",
  "UNABLE_TO_GET_ISSUER_CERT",
  "UNABLE_TO_GET_ISSUER_CERT_LOCALLY",
  "CERT_HAS_EXPIRED",
  "CERT_NOT_YET_VALID",
  "CERT_UNTRUSTED",
  "CERT_REVOKED",
  "CERT_SIGNATURE_FAILURE",
  "ERR_TLS_CERT_ALTNAME_INVALID",
]);

/** The certificate problem behind a failed call, if that is what it was. */
export function certificateProblem(error: unknown): string | undefined {
  for (let cause: unknown = error, depth = 0; cause && depth < 5; depth++) {
    const { code, message } = cause as { code?: unknown; message?: unknown };
    if (typeof code === "string" && CERTIFICATE_ERRORS.has(code)) return `${code}: ${String(message)}`;
    cause = (cause as { cause?: unknown }).cause;
  }
  return undefined;
}

/** TLS options for https:// URLs: the CA to trust and the name to verify, when given. */
function tlsOptions(args: WatchArgs): { ca?: Buffer; servername?: string } {
  const options: { ca?: Buffer; servername?: string } = {};
  if (args.caCertFile !== undefined) {
    try {
      options.ca = fs.readFileSync(args.caCertFile);
    } catch (err) {
      throw new UsageError(`--cacert ${args.caCertFile}: cannot read it (${(err as NodeJS.ErrnoException).code ?? String(err)})`);
    }
  }
  if (args.serverName !== undefined) options.servername = args.serverName;
  return options;
}

export function createTransport(args: WatchArgs): Transport {
  const nodeOptions = tlsOptions(args);
  const interceptors: Interceptor[] = [];
  const token = args.token;
  if (token) {
    interceptors.push((next) => (req) => {
      req.header.set("authorization", `Bearer ${token}`);
      return next(req);
    });
  }
  switch (args.protocol) {
    case "grpc":
      return createGrpcTransport({ baseUrl: args.url, interceptors, nodeOptions });
    case "connect":
      return args.httpVersion === "2"
        ? createConnectTransport({ baseUrl: args.url, httpVersion: "2", interceptors, nodeOptions })
        : createConnectTransport({ baseUrl: args.url, httpVersion: "1.1", interceptors, nodeOptions });
    case "grpc-web":
      return args.httpVersion === "2"
        ? createGrpcWebTransport({ baseUrl: args.url, httpVersion: "2", interceptors, nodeOptions })
        : createGrpcWebTransport({ baseUrl: args.url, httpVersion: "1.1", interceptors, nodeOptions });
  }
}

const ALT_SCREEN_ON = "\x1b[?1049h";
const ALT_SCREEN_OFF = "\x1b[?1049l";
const CURSOR_HIDE = "\x1b[?25l";
const CURSOR_SHOW = "\x1b[?25h";

async function main(): Promise<void> {
  let args: WatchArgs;
  try {
    args = parseWatchArgs(process.argv.slice(2), process.env);
  } catch (err) {
    if (!(err instanceof UsageError)) throw err;
    process.stderr.write(`keypool-watch: ${err.message}\n\n${USAGE}\n`);
    process.exit(2);
  }
  if (args.help) {
    process.stdout.write(`${USAGE}\n`);
    return;
  }
  if (args.version) {
    process.stdout.write(`keypool-watch ${VERSION}\n`);
    return;
  }

  const out = process.stdout;
  const interactive = out.isTTY === true;
  // Piped into `head` or a pager that quit: the reader is gone, and so is the reason to run.
  out.on("error", (err: NodeJS.ErrnoException) => {
    if (err.code === "EPIPE") process.exit(0);
    process.stderr.write(`keypool-watch: cannot write the output (${err.code ?? err.message})\n`);
    process.exit(1);
  });
  let transport: Transport;
  try {
    transport = createTransport(args);
  } catch (err) {
    if (!(err instanceof UsageError)) throw err;
    process.stderr.write(`keypool-watch: ${err.message}\n`);
    process.exit(2);
  }
  const client = createClient(KeyPoolService, transport);
  const view = new WatchView();
  const filter = describeFilter(args);
  let connection: ConnectionState = { kind: "connecting" };
  let retryAt = 0;
  let stopped = false;
  let call: AbortController | null = null;
  let wakeSleep: (() => void) | null = null;
  let renderTimer: NodeJS.Timeout | null = null;
  let lastPlain = "";

  const render = () => {
    if (renderTimer) clearTimeout(renderTimer);
    renderTimer = null;
    if (stopped) return;
    const now = Date.now();
    const state: ConnectionState =
      connection.kind === "retrying" ? { ...connection, inMs: Math.max(0, retryAt - now) } : connection;
    const lines = renderScreen(view, {
      url: args.url,
      filter,
      connection: state,
      now,
      width: interactive ? out.columns || 120 : 200,
      height: interactive ? out.rows || 40 : 100_000,
      color: interactive && args.color,
    });
    if (interactive) {
      // Home, each line followed by clear-to-end-of-line, then clear the rest: no flicker.
      out.write(`\x1b[H${lines.join("\x1b[K\r\n")}\x1b[K\x1b[J`);
    } else {
      const text = lines.join("\n");
      if (text !== lastPlain) out.write(`${text}\n\n`);
      lastPlain = text;
    }
  };
  const scheduleRender = () => {
    if (!renderTimer && !stopped) renderTimer = setTimeout(render, RENDER_INTERVAL_MS);
  };
  // Countdowns ("ready in") move even when nothing arrives.
  const ticker = setInterval(render, interactive ? 1000 : 5000);

  const restoreTerminal = () => {
    if (interactive) out.write(`${CURSOR_SHOW}${ALT_SCREEN_OFF}`);
    if (process.stdin.isTTY && process.stdin.isRaw) process.stdin.setRawMode(false);
  };
  const stop = (code: number, message?: string) => {
    if (stopped) return;
    stopped = true;
    clearInterval(ticker);
    if (renderTimer) clearTimeout(renderTimer);
    call?.abort();
    wakeSleep?.();
    restoreTerminal();
    if (message) process.stderr.write(`keypool-watch: ${message}\n`);
    process.exit(code);
  };

  process.on("SIGINT", () => stop(0));
  process.on("SIGTERM", () => stop(0));
  process.on("SIGHUP", () => stop(0));
  process.on("uncaughtException", (err) => stop(1, err instanceof Error ? err.message : String(err)));
  if (interactive) {
    out.write(`${ALT_SCREEN_ON}${CURSOR_HIDE}`);
    out.on("resize", render);
  }
  if (process.stdin.isTTY) {
    // Raw mode: q quits; Ctrl-C arrives as a byte rather than a signal.
    process.stdin.setRawMode(true);
    process.stdin.resume();
    process.stdin.on("data", (data: Buffer) => {
      const key = data.toString("latin1");
      if (key.includes("q") || key.includes("Q") || key.includes("\x03") || key.includes("\x04")) stop(0);
    });
  }
  render();

  for (let attempt = 0; !stopped; ) {
    connection = { kind: "connecting" };
    render();
    const controller = new AbortController();
    call = controller;
    let idle: NodeJS.Timeout | null = null;
    const resetIdle = () => {
      if (idle) clearTimeout(idle);
      idle = setTimeout(() => controller.abort(new ConnectError("no message from the server for 2 minutes", Code.Unavailable)), IDLE_TIMEOUT_MS);
    };
    let reason = "the server ended the stream";
    try {
      resetIdle();
      const stream = client.watchKeys(
        // batch: one message per coalescing window, however many keys changed in it.
        { provider: args.provider, modelFamilies: args.families, batch: true },
        { signal: controller.signal },
      );
      for await (const message of stream) {
        resetIdle();
        view.apply(message, Date.now());
        if (message.event.case === "snapshot" && view.synced) {
          connection = { kind: "connected" };
          attempt = 0;
          render();
        } else {
          scheduleRender();
        }
      }
    } catch (err) {
      if (stopped) break;
      const certificate = certificateProblem(err);
      if (certificate) {
        stop(
          1,
          `the server's TLS certificate is not accepted (${certificate}). Trust the CA that signed it with --cacert FILE, and name the host it was issued for with --servername NAME if that is not the URL's host.`,
        );
        return;
      }
      const error = ConnectError.from(err);
      if (FATAL.has(error.code)) {
        stop(1, `${Code[error.code]}: ${error.rawMessage}`);
        return;
      }
      reason = `${Code[error.code]}: ${error.rawMessage}`;
    } finally {
      if (idle) clearTimeout(idle);
    }
    if (stopped) break;
    view.disconnected();
    const delay = backoffMs(attempt++);
    retryAt = Date.now() + delay;
    connection = { kind: "retrying", inMs: delay, reason };
    render();
    await new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, delay);
      wakeSleep = () => {
        clearTimeout(timer);
        resolve();
      };
    });
    wakeSleep = null;
  }
}

if (require.main === module) {
  main().catch((err: unknown) => {
    process.stdout.write(`${CURSOR_SHOW}`);
    process.stderr.write(`keypool-watch: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exit(1);
  });
}
