import { quoted } from "./echo";
import { invalidArgument } from "./errors";
import { credentialProblem, type ProviderInfo } from "./providers";

/**
 * The size limits of docs/errors.md ("The pool's answers"). Checked in the pool so that every
 * transport rejects the same input.
 */
export const LIMITS = {
  modelBytes: 256,
  headers: 64,
  headerValueBytes: 8 * 1024,
  headerNameBytes: 1024,
  tokens: 1_000_000_000,
  reasonBytes: 1024,
  organizationIdBytes: 256,
  errorFieldBytes: 256,
} as const;

const bytes = (s: string) => Buffer.byteLength(s, "utf8");

export function checkModel(model: string): void {
  if (typeof model !== "string" || model.length === 0) {
    throw invalidArgument("model is required (the upstream model name, e.g. \"gpt-4o\")");
  }
  // Every lease comes here: a name short enough in UTF-16 units cannot be too long in bytes.
  if (model.length * 3 <= LIMITS.modelBytes) return;
  const size = bytes(model);
  if (size > LIMITS.modelBytes) {
    throw invalidArgument(`model is ${size} bytes long; the limit is ${LIMITS.modelBytes} bytes`);
  }
}

/** C0 controls and DEL: no provider issues keys with them, and a newline or NUL breaks every header they go into. */
const CONTROL_CHARACTER = /[\u0000-\u001f\u007f]/;
/** For a credential holding PEM text (never sent as a header, only used to sign): line breaks are its own. */
const CONTROL_CHARACTER_BUT_LINE_BREAK = /[\u0000-\u0009\u000b\u000c\u000e-\u001f\u007f]/;

/**
 * Checks a secret's size and characters and, for a provider whose credential has several parts,
 * that every part is there in its shape. The message names the provider's part, never the key.
 */
export function checkKeySecret(key: string, where: string, provider: ProviderInfo): void {
  if (typeof key !== "string" || key.trim().length === 0) throw invalidArgument(`${where}: key is empty`);
  const size = bytes(key);
  const limit = provider.credential.maxBytes;
  if (size > limit) {
    throw invalidArgument(`${where}: key is ${size} bytes long; the limit for ${provider.displayName} is ${limit} bytes`);
  }
  const control = (provider.credential.lineBreaks ? CONTROL_CHARACTER_BUT_LINE_BREAK : CONTROL_CHARACTER).exec(key);
  if (control) {
    const code = control[0].charCodeAt(0).toString(16).toUpperCase().padStart(4, "0");
    throw invalidArgument(
      `${where}: key contains the control character U+${code} at character ${control.index + 1}; a key is printable text (the key is not shown)`,
    );
  }
  const problem = credentialProblem(provider.displayName, provider.credential, key);
  if (problem) throw invalidArgument(`${where}: ${problem}`);
}

export function checkHeaders(headers: Record<string, string>): void {
  const names = Object.keys(headers);
  if (names.length > LIMITS.headers) {
    throw invalidArgument(`${names.length} headers reported; the limit is ${LIMITS.headers}`);
  }
  for (const name of names) {
    if (bytes(name) > LIMITS.headerNameBytes) {
      throw invalidArgument(`a header name is over ${LIMITS.headerNameBytes} bytes long`);
    }
    const value = headers[name];
    if (typeof value !== "string") throw invalidArgument(`header ${quoted(name)} has no string value`);
    if (bytes(value) > LIMITS.headerValueBytes) {
      // Names only: a header value is never echoed.
      throw invalidArgument(
        `header ${quoted(name)} is over ${LIMITS.headerValueBytes} bytes (8 KiB) long; the limit is ${LIMITS.headerValueBytes} bytes`,
      );
    }
  }
}

export function checkTokens(name: string, value: number): void {
  if (!Number.isSafeInteger(value) || value < 0) {
    throw invalidArgument(`${name} must be a whole number of tokens, 0 or more`);
  }
  if (value > LIMITS.tokens) {
    throw invalidArgument(`${name} is ${value}; the limit is ${LIMITS.tokens} (10^9) per call`);
  }
}

export function checkStatusCode(code: number): void {
  if (!Number.isInteger(code) || code < 100 || code > 599) {
    throw invalidArgument(`status_code ${code} is not an HTTP status (100-599)`);
  }
}

export function checkText(name: string, value: string, limit: number): void {
  if (bytes(value) > limit) throw invalidArgument(`${name} is over ${limit} bytes long`);
}
