/**
 * The command line of `keypool` itself. Everything is configured through the environment (so that
 * one unit file, container spec or shell line says it all); the command line only asks for help
 * or the version.
 */
import type { Setting } from "../config/settings";

export type ServerCommand = { kind: "serve" } | { kind: "help" } | { kind: "version" } | { kind: "usage-error"; message: string };

export function parseServerArgs(argv: readonly string[]): ServerCommand {
  if (argv.length === 0) return { kind: "serve" };
  const [first] = argv;
  if (argv.length === 1 && (first === "--help" || first === "-h")) return { kind: "help" };
  if (argv.length === 1 && (first === "--version" || first === "-V")) return { kind: "version" };
  return {
    kind: "usage-error",
    message: `unexpected argument "${argv.join(" ")}": keypool is configured through environment variables (see keypool --help)`,
  };
}

/** `keypool --help`: what it is, how to run it, and every setting with its default. */
export function helpText(version: string, settings: readonly Setting<unknown>[]): string {
  const width = Math.max(...settings.map((s) => s.name.length));
  const defaultWidth = Math.max(...settings.map((s) => shownDefault(s).length), "default".length);
  const rows = settings.map(
    (s) => `  ${s.name.padEnd(width)}  ${shownDefault(s).padEnd(defaultWidth)}  ${plain(s.meaning)}`,
  );
  return [
    `keypool ${version}: leases upstream LLM API keys from one pool over gRPC, gRPC-Web and Connect.`,
    "",
    "Usage: keypool            serve, configured by the environment variables below",
    "       keypool --help     this text",
    "       keypool --version  the version",
    "",
    "Stops cleanly on SIGTERM, SIGINT or SIGHUP (health NOT_SERVING, open calls ended, state",
    "written) within 5 s. Health: gRPC grpc.health.v1.Health, or HTTP GET /healthz.",
    "",
    `  ${"variable".padEnd(width)}  ${"default".padEnd(defaultWidth)}  meaning`,
    ...rows,
    "",
  ].join("\n");
}

/** The default as the README's table shows it, without its Markdown; "(none)" when unset. */
export function shownDefault(setting: Setting<unknown>): string {
  return setting.shown === "" ? "(none)" : plain(setting.shown);
}

/** Markdown's backticks mean nothing on a terminal. */
function plain(text: string): string {
  return text.replace(/`/g, "");
}
