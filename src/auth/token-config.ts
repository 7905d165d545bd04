import { readConfigFile, readTextFile, type ReadFile } from "../config/config-file";
import { ConfigMessageError } from "../config/config-error";
import type { Settings } from "../config/settings";
import { isRole, ROLES, type Role } from "./roles";
import type { TokenEntry } from "./token-store";

/**
 * Reads bearer tokens from KEYPOOL_TOKENS ("role:token,role:token") and KEYPOOL_TOKENS_FILE
 * (one "role:token" a line, # comments, blank lines ignored). Both may be set: their tokens add
 * up. A bad entry stops the start with an error that names the variable and the entry's
 * position, and never repeats the entry itself, which may be a secret.
 */
export class TokenConfigError extends ConfigMessageError {
  override readonly name = "TokenConfigError";
}

/** A token travels in an HTTP header: visible ASCII only, no spaces, no commas (they split entries). */
const TOKEN_PATTERN = /^[\x21-\x7e]+$/;
const MAX_TOKEN_BYTES = 4096;

function parseEntry(raw: string, where: string): TokenEntry {
  const colon = raw.indexOf(":");
  if (colon <= 0) {
    throw new TokenConfigError(`${where}: expected role:token (roles: ${ROLES.join(", ")})`);
  }
  const role = raw.slice(0, colon).trim().toLowerCase();
  const token = raw.slice(colon + 1).trim();
  if (!isRole(role)) {
    // The role text is not repeated: a misplaced colon could make it part of a secret.
    throw new TokenConfigError(`${where}: unknown role (roles: ${ROLES.join(", ")})`);
  }
  if (token.length === 0) throw new TokenConfigError(`${where}: the token is empty`);
  if (token.length > MAX_TOKEN_BYTES) {
    throw new TokenConfigError(`${where}: the token is longer than ${MAX_TOKEN_BYTES} characters`);
  }
  if (!TOKEN_PATTERN.test(token)) {
    throw new TokenConfigError(
      `${where}: the token may contain only visible ASCII characters (no spaces or commas)`,
    );
  }
  return { role: role as Role, token };
}

/** Parses KEYPOOL_TOKENS' value. */
export function parseTokenList(value: string, variable = "KEYPOOL_TOKENS"): TokenEntry[] {
  const entries: TokenEntry[] = [];
  value.split(",").forEach((part, index) => {
    const raw = part.trim();
    if (raw === "") return;
    entries.push(parseEntry(raw, `${variable} entry ${index + 1}`));
  });
  return entries;
}

/** Parses the text of a KEYPOOL_TOKENS_FILE. */
export function parseTokenFile(text: string, variable = "KEYPOOL_TOKENS_FILE"): TokenEntry[] {
  const entries: TokenEntry[] = [];
  text.split(/\r?\n/).forEach((line, index) => {
    const raw = line.trim();
    if (raw === "" || raw.startsWith("#")) return;
    entries.push(parseEntry(raw, `${variable} line ${index + 1}`));
  });
  return entries;
}

/** Refuses one token configured twice: with two roles it would be ambiguous, and it is surely a mistake. */
function rejectRepeats(entries: TokenEntry[]): void {
  const seen = new Set<string>();
  entries.forEach((entry) => {
    if (seen.has(entry.token)) {
      throw new TokenConfigError(
        "KEYPOOL_TOKENS/KEYPOOL_TOKENS_FILE: the same token is configured more than once",
      );
    }
    seen.add(entry.token);
  });
}

/** Reads every configured token; an empty list means "no authentication". */
export function loadTokens(
  settings: Pick<Settings["access"], "tokens" | "tokensFile">,
  readFile: ReadFile = readTextFile,
): TokenEntry[] {
  const entries: TokenEntry[] = [];
  entries.push(...parseTokenList(settings.tokens));
  const file = settings.tokensFile;
  if (file) {
    const text = readConfigFile(
      file,
      readFile,
      (code) => new TokenConfigError(`KEYPOOL_TOKENS_FILE: cannot read ${file} (${code ?? "unreadable"})`),
    );
    entries.push(...parseTokenFile(text, `KEYPOOL_TOKENS_FILE (${file})`));
  }
  rejectRepeats(entries);
  return entries;
}
