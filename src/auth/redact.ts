/**
 * pino `redact` settings: whatever a log call is handed, the values of fields that may hold a
 * secret (an API key, a bearer token, raw headers) are replaced before the line is written, at
 * every level. This is the safety net; code must still never log a request's headers or body raw.
 */
const SECRET_FIELDS = [
  "key",
  "apiKey",
  "api_key",
  "secret",
  "token",
  "tokens",
  "authorization",
  "Authorization",
  "password",
  "cookie",
  "bearer",
  "credentials",
];

export const REDACT_PATHS: string[] = [
  ...SECRET_FIELDS,
  ...SECRET_FIELDS.map((f) => `*.${f}`),
  ...SECRET_FIELDS.map((f) => `*.*.${f}`),
  "headers",
  "*.headers",
  "header",
  "*.header",
  "requestHeader",
  "*.requestHeader",
  "keys[*].key",
  "*.keys[*].key",
];

export const REDACT_CENSOR = "[redacted]";

/** Spread into pino's options: `pino({ ...loggerRedaction, level })`. */
export const loggerRedaction = { redact: { paths: REDACT_PATHS, censor: REDACT_CENSOR } };
