/**
 * Where keys come from at start: OPENAI_KEY and ANTHROPIC_KEY (comma separated) and the keys
 * file named by KEYPOOL_KEYS_FILE (JSON or YAML), which holds keys of every provider. Errors name the
 * variable, file and entry, never a key: these messages reach logs.
 */
import { extname } from "node:path";
import { parseYaml } from "./yaml-text";
import type { FamilyTable } from "../domain/model-families";
import { isProviderId, joinCredential, providerInfo, PROVIDERS } from "../domain/providers";
import { LIMITS } from "../domain/validation";
import type { KeySpec, ProviderId } from "../domain/types";
import { readConfigFile, readTextFile, type ReadFile } from "./config-file";
import { ConfigError } from "./config-error";
import { SETTINGS, type Settings } from "./settings";

export class KeySourceError extends ConfigError {
  override readonly name = "KeySourceError";
}


const LISTED_KEYS: readonly { field: "openai" | "anthropic"; provider: ProviderId; variable: string }[] = [
  { field: "openai", provider: "openai", variable: SETTINGS.keys.openai.name },
  { field: "anthropic", provider: "anthropic", variable: SETTINGS.keys.anthropic.name },
];

/** A comma separated key list: trimmed, empties dropped, duplicates dropped (first kept). */
export function parseKeyList(value: string | undefined): string[] {
  if (!value) return [];
  return [...new Set(value.split(",").map((k) => k.trim()).filter((k) => k.length > 0))];
}

/**
 * Every key spec the settings name, the key lists first, then the keys file. With the family
 * table, each entry's families are checked here, so that an error can name the file and the entry
 * (the pool, which checks again, knows neither).
 */
export function loadKeySpecs(keys: Settings["keys"], readFile: ReadFile = readTextFile, families?: FamilyTable): KeySpec[] {
  const specs: KeySpec[] = [];
  for (const { field, provider, variable } of LISTED_KEYS) {
    parseKeyList(keys[field]).forEach((key, i) => {
      checkKeySize(key, provider, `${variable} entry ${i + 1}`);
      specs.push({ provider, key });
    });
  }
  const file = keys.file;
  if (file) {
    const text = readConfigFile(
      file,
      readFile,
      (code) => new KeySourceError(file, `cannot read the keys file named by KEYPOOL_KEYS_FILE (${code ?? "error"})`),
    );
    const fromFile = parseKeysFile(text, file, families);
    if (specs.length === 0) return dedupe(fromFile);
    // Not push(...list): a keys file of 100,000 keys would be 100,000 call arguments.
    for (const spec of fromFile) specs.push(spec);
  }
  return dedupe(specs);
}

const COMMON_FIELDS = ["provider", "key", "modelFamilies", "model_families", "trial", "organizationId", "organization_id"];

/** camelCase → snake_case: both spellings are accepted for every field. */
const snake = (name: string) => name.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`);

/** The credential fields of providers whose keys have several parts (Azure, Bedrock, Vertex). */
const PART_FIELDS = new Map<string, string>(
  PROVIDERS.flatMap((p) =>
    p.credential.parts.length > 1 ? p.credential.parts.flatMap((part) => [[part.field, part.field], [snake(part.field), part.field]] as [string, string][]) : [],
  ),
);
const FIELDS = new Set([...COMMON_FIELDS, ...PART_FIELDS.keys()]);
const PROVIDER_NAMES = PROVIDERS.map((p) => `"${p.id}"`).join(", ");

/**
 * A keys file: a list of {provider, key, modelFamilies?, trial?, organizationId?} (snake_case
 * names accepted too), or {keys: [...]}. JSON when the name ends in .json, else YAML. A provider
 * whose credential has parts takes them as fields (Azure: resourceName, deploymentId, apiKey)
 * or, instead, `key` in the joined form the wire uses.
 */
export function parseKeysFile(text: string, fileName: string, families?: FamilyTable): KeySpec[] {
  let doc: unknown;
  const json = extname(fileName).toLowerCase() === ".json";
  try {
    doc = json ? JSON.parse(text) : parseYaml(text);
  } catch (error) {
    // Parser messages quote the offending text, which may be a key: say only where.
    throw new KeySourceError(fileName, `is not valid ${json ? "JSON" : "YAML"}${where(error, text)}`);
  }
  if (doc === null || doc === undefined) return [];
  const list = Array.isArray(doc) ? doc : isObject(doc) && Array.isArray(doc.keys) ? doc.keys : undefined;
  if (!list) throw new KeySourceError(fileName, "must hold a list of keys (or an object with a \"keys\" list)");
  return list.map((item, i) => plainEntry(item) ?? parseEntry(item, `${fileName}: entry ${i + 1}`, families));
}

/**
 * The usual entry, exactly {provider, key} with the provider's id as written and a key within
 * its size: the parsed object itself becomes the spec (trimmed), so that a large file makes no
 * second object, list or name per key. Undefined for anything else, which parseEntry checks
 * (and names in its errors).
 */
function plainEntry(item: unknown): KeySpec | undefined {
  if (!isObject(item) || typeof item.provider !== "string" || typeof item.key !== "string") return undefined;
  let fields = 0;
  for (const name in item) if (Object.hasOwn(item, name)) fields++;
  if (fields !== 2 || !isProviderId(item.provider)) return undefined;
  const key = item.key.trim();
  if (key.length === 0 || !withinSize(key, item.provider)) return undefined;
  if (key !== item.key) item.key = key;
  return item as KeySpec;
}

function parseEntry(item: unknown, entry: string, families: FamilyTable | undefined): KeySpec {
  let where = entry;
  if (!isObject(item)) throw new KeySourceError(where, "must be an object with provider and key");
  for (const name of Object.keys(item)) {
    if (!FIELDS.has(name)) {
      throw new KeySourceError(where, `unknown field ${JSON.stringify(name)} (fields: ${COMMON_FIELDS.join(", ")}, and a provider's credential fields)`);
    }
  }
  const provider = typeof item.provider === "string" ? item.provider.trim().toLowerCase() : item.provider;
  if (!isProviderId(provider)) {
    throw new KeySourceError(where, `provider must be one of ${PROVIDER_NAMES}`);
  }
  // From here on the entry is named by its provider too: "keys.yaml: entry 3 (openai)".
  where = `${entry} (${provider})`;
  const credential = credentialOf(item, provider, where);
  checkKeySize(credential.trim(), provider, where);
  const asked = item.modelFamilies ?? item.model_families;
  if (asked !== undefined && (!Array.isArray(asked) || !asked.every((f) => typeof f === "string"))) {
    throw new KeySourceError(where, "modelFamilies must be a list of family names");
  }
  if (asked && families) {
    const known = families.familiesOf(provider);
    for (const family of asked as string[]) {
      if (!known.has(family.trim())) {
        throw new KeySourceError(
          where,
          `${JSON.stringify(family)} is not one of the ${provider} model families (known: ${[...known].join(", ")}; KEYPOOL_MODEL_FAMILIES adds more)`,
        );
      }
    }
  }
  if (item.trial !== undefined && typeof item.trial !== "boolean") {
    throw new KeySourceError(where, "trial must be true or false");
  }
  const org = item.organizationId ?? item.organization_id;
  if (org !== undefined && typeof org !== "string") {
    throw new KeySourceError(where, "organizationId must be a string");
  }
  if (org && Buffer.byteLength(org, "utf8") > LIMITS.organizationIdBytes) {
    throw new KeySourceError(where, `organizationId is over ${LIMITS.organizationIdBytes} bytes long`);
  }
  const key = credential.trim();
  const spec: KeySpec = { provider, key };
  if (asked && asked.length > 0) spec.modelFamilies = asked.map((f: string) => f.trim());
  if (item.trial) spec.trial = true;
  if (org && org.trim()) spec.organizationId = org.trim();
  return spec;
}

/** The provider's size limit for a credential, said without quoting the key. */
function checkKeySize(key: string, provider: ProviderId, where: string): void {
  if (withinSize(key, provider)) return;
  const size = Buffer.byteLength(key, "utf8");
  const limit = providerInfo(provider).credential.maxBytes;
  throw new KeySourceError(where, `the key is ${size} bytes long; the limit is ${limit} bytes`);
}

function withinSize(key: string, provider: ProviderId): boolean {
  const limit = providerInfo(provider).credential.maxBytes;
  // A UTF-16 code unit is at most 3 bytes of UTF-8: most keys need no count.
  return key.length * 3 <= limit || Buffer.byteLength(key, "utf8") <= limit;
}

/**
 * The entry's credential string: `key`, or the provider's part fields joined. The pool checks
 * each part's shape when the key is added; here only presence and types are checked.
 */
function credentialOf(item: Record<string, any>, provider: ProviderId, where: string): string {
  const info = providerInfo(provider);
  const parts: Record<string, unknown> = {};
  for (const [name, value] of Object.entries(item)) {
    const part = PART_FIELDS.get(name);
    if (part === undefined) continue;
    if (!info.credential.parts.some((p) => p.field === part)) {
      throw new KeySourceError(where, `field ${JSON.stringify(name)} is not part of the ${info.displayName} credential`);
    }
    parts[part] = value;
  }
  const given = Object.keys(parts);
  if (given.length === 0) {
    if (typeof item.key !== "string" || item.key.trim().length === 0) {
      const fields = info.credential.parts.length > 1 ? ` (or the fields ${info.credential.parts.map((p) => p.field).join(", ")})` : "";
      throw new KeySourceError(where, `key must be a non-empty string${fields}`);
    }
    return item.key;
  }
  if (item.key !== undefined) {
    throw new KeySourceError(where, `give either key or the ${info.displayName} credential fields, not both`);
  }
  const joined = joinCredential(info.credential, parts);
  if ("missing" in joined) {
    throw new KeySourceError(where, `${info.displayName} keys need ${joined.missing.join(", ")} (each a non-empty string)`);
  }
  return joined.credential;
}

function dedupe(specs: KeySpec[]): KeySpec[] {
  // Keys are grouped by provider and organization (a handful of groups), so that the key string
  // itself is the set member: no new string per key.
  const seen = new Map<ProviderId, Map<string, Set<string>>>();
  const isRepeat = (s: KeySpec) => {
    let groups = seen.get(s.provider);
    if (!groups) seen.set(s.provider, (groups = new Map()));
    const organization = s.organizationId ?? "";
    let keys = groups.get(organization);
    if (!keys) groups.set(organization, (keys = new Set()));
    if (keys.has(s.key)) return true;
    keys.add(s.key);
    return false;
  };
  const first = specs.findIndex(isRepeat);
  if (first < 0) return specs; // the usual case: no copy of the list
  const kept = specs.slice(0, first);
  for (let i = first + 1; i < specs.length; i++) if (!isRepeat(specs[i])) kept.push(specs[i]);
  return kept;
}

function isObject(v: unknown): v is Record<string, any> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

/** " (line N)" from a YAML or JSON parser error, without quoting the text. */
function where(error: unknown, text: string): string {
  const e = error as { linePos?: { line: number }[]; message?: string };
  if (e?.linePos?.[0]?.line) return ` (line ${e.linePos[0].line})`;
  const pos = /position (\d+)/.exec(e?.message ?? "");
  if (pos) return ` (line ${text.slice(0, Number(pos[1])).split("\n").length})`;
  return "";
}
