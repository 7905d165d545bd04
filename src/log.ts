/**
 * The service's logger: pino JSON lines on stdout, readable (pino-pretty) when stdout is a
 * terminal. Nothing that logs may pass a key's secret: the pool only ever hands out hashes, and
 * the error mapper logs messages, never request bodies.
 */
import pino from "pino";
import { loggerRedaction } from "./auth/redact";
import type { LogLevel } from "./config/settings";
import { truncated } from "./domain/echo";

export type Logger = pino.Logger;


export interface LoggerOptions {
  level: LogLevel;
  /** Force pretty output on or off; default: pretty when stdout is a TTY. */
  pretty?: boolean;
  /** Write here instead of stdout (tests). */
  destination?: pino.DestinationStream;
}

/** The longest text one log field holds: a field may carry client input (an error's text). */
export const LOG_FIELD_LIMIT_BYTES = 2048;

/** Fields below this depth are cut too; deeper ones are summarised (log objects are flat). */
const LOG_FIELD_DEPTH = 3;

function bounded(value: unknown, depth: number): unknown {
  if (typeof value === "string") return truncated(value, LOG_FIELD_LIMIT_BYTES);
  if (typeof value !== "object" || value === null) return value;
  if (depth >= LOG_FIELD_DEPTH) return "[nested too deep]";
  if (Array.isArray(value)) return value.slice(0, 100).map((v) => bounded(v, depth + 1));
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(value)) out[k] = bounded(v, depth + 1);
  return out;
}

/** pino's per-line hook: every field of every line bounded, whatever a caller passed. */
const boundedFields = { formatters: { log: (object: Record<string, unknown>) => bounded(object, 0) as Record<string, unknown> } };

export function createLogger(options: LoggerOptions): Logger {
  // Redaction is the safety net: fields that may hold a secret are censored at every level.
  const base = { level: options.level, base: { service: "keypool" }, ...loggerRedaction, ...boundedFields };
  if (options.destination) return pino(base, options.destination);
  const pretty = options.pretty ?? Boolean(process.stdout.isTTY);
  if (pretty) {
    return pino({ ...base, transport: { target: "pino-pretty", options: { colorize: true } } });
  }
  return pino(base);
}

/** A logger that drops everything: the default for tests and embedders. */
export const silentLogger: Logger = pino({ level: "silent" });
