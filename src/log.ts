/**
 * The service's logger: pino JSON lines on stdout, readable (pino-pretty) when stdout is a
 * terminal. Nothing that logs may pass a key's secret: the pool only ever hands out hashes, and
 * the error mapper logs messages, never request bodies.
 */
import pino from "pino";
import { loggerRedaction } from "./auth/redact";
import type { LogLevel } from "./config/settings";

export type Logger = pino.Logger;


export interface LoggerOptions {
  level: LogLevel;
  /** Force pretty output on or off; default: pretty when stdout is a TTY. */
  pretty?: boolean;
  /** Write here instead of stdout (tests). */
  destination?: pino.DestinationStream;
}

export function createLogger(options: LoggerOptions): Logger {
  // Redaction is the safety net: fields that may hold a secret are censored at every level.
  const base = { level: options.level, base: { service: "keypool" }, ...loggerRedaction };
  if (options.destination) return pino(base, options.destination);
  const pretty = options.pretty ?? Boolean(process.stdout.isTTY);
  if (pretty) {
    return pino({ ...base, transport: { target: "pino-pretty", options: { colorize: true } } });
  }
  return pino(base);
}

/** A logger that drops everything: the default for tests and embedders. */
export const silentLogger: Logger = pino({ level: "silent" });
