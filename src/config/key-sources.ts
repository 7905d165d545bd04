/**
 * Where keys come from at start: OPENAI_KEY and ANTHROPIC_KEY (comma separated) and the keys file named by KEYPOOL_KEYS_FILE (JSON or YAML). Errors name the
 * variable, file and entry, never a key: these messages reach logs.
 */
import { extname } from "node:path";
import { parse as parseYaml } from "yaml";
import { isProviderId } from "../domain/providers";
import type { KeySpec, ProviderId } from "../domain/types";
import { readConfigFile, readTextFile, type ReadFile } from "./config-file";
import { ConfigError } from "./config-error";
import type { Settings } from "./settings";

export class KeySourceError extends ConfigError {
  override readonly name = "KeySourceError";
}


const LISTED_KEYS: readonly { field: "openai" | "anthropic"; provider: ProviderId }[] = [
  { field: "openai", provider: "openai" },
  { field: "anthropic", provider: "anthropic" },
];

/** A comma separated key list: trimmed, empties dropped, duplicates dropped (first kept). */
export function parseKeyList(value: string | undefined): string[] {
  if (!value) return [];
  return [...new Set(value.split(",").map((k) => k.trim()).filter((k) => k.length > 0))];
}

/** Every key spec the settings name, the key lists first, then the keys file. */
export function loadKeySpecs(keys: Settings["keys"], readFile: ReadFile = readTextFile): KeySpec[] {
  const specs: KeySpec[] = [];
  for (const { field, provider } of LISTED_KEYS) {
    for (const key of parseKeyList(keys[field])) specs.push({ provider, key });
  }
  const file = keys.file;
  if (file) {
    const text = readConfigFile(
      file,
      readFile,
      (code) => new KeySourceError(file, `cannot read the keys file named by KEYPOOL_KEYS_FILE (${code ?? "error"})`),
    );
    const fromFile = parseKeysFile(text, file);
    if (specs.length === 0) return dedupe(fromFile);
    // Not push(...list): a keys file of 100,000 keys would be 100,000 call arguments.
    for (const spec of fromFile) specs.push(spec);
  }
  return dedupe(specs);
}

const FIELDS = new Set([
  "provider",
  "key",
  "modelFamilies",
  "model_families",
  "trial",
  "organizationId",
  "organization_id",
]);

/**
 * A keys file: a list of {provider, key, modelFamilies?, trial?, organizationId?} (snake_case
 * names accepted too), or {keys: [...]}. JSON when the name ends in .json, else YAML.
 */
export function parseKeysFile(text: string, fileName: string): KeySpec[] {
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
  return list.map((item, i) => parseEntry(item, `${fileName}: entry ${i + 1}`));
}

function parseEntry(item: unknown, where: string): KeySpec {
  if (!isObject(item)) throw new KeySourceError(where, "must be an object with provider and key");
  for (const name of Object.keys(item)) {
    if (!FIELDS.has(name)) {
      throw new KeySourceError(where, `unknown field ${JSON.stringify(name)} (fields: ${[...FIELDS].join(", ")})`);
    }
  }
  const provider = typeof item.provider === "string" ? item.provider.trim().toLowerCase() : item.provider;
  if (!isProviderId(provider)) {
    throw new KeySourceError(where, "provider must be \"openai\" or \"anthropic\"");
  }
  if (typeof item.key !== "string" || item.key.trim().length === 0) {
    throw new KeySourceError(where, "key must be a non-empty string");
  }
  const families = item.modelFamilies ?? item.model_families;
  if (families !== undefined && (!Array.isArray(families) || !families.every((f) => typeof f === "string"))) {
    throw new KeySourceError(where, "modelFamilies must be a list of family names");
  }
  if (item.trial !== undefined && typeof item.trial !== "boolean") {
    throw new KeySourceError(where, "trial must be true or false");
  }
  const org = item.organizationId ?? item.organization_id;
  if (org !== undefined && typeof org !== "string") {
    throw new KeySourceError(where, "organizationId must be a string");
  }
  const key = item.key.trim();
  if (item.provider === provider && Object.keys(item).length === 2) {
    // The usual entry, {provider, key}, already in its final form: the parsed object itself
    // becomes the spec, so that a large file makes no second object per key.
    if (key !== item.key) item.key = key;
    return item as KeySpec;
  }
  const spec: KeySpec = { provider, key };
  if (families && families.length > 0) spec.modelFamilies = families.map((f: string) => f.trim());
  if (item.trial) spec.trial = true;
  if (org && org.trim()) spec.organizationId = org.trim();
  return spec;
}

function dedupe(specs: KeySpec[]): KeySpec[] {
  // Keys are grouped by provider and organization (a handful of groups), so that the key string
  // itself is the set member: no new string per key.
  const seen = new Map<string, Set<string>>();
  const isRepeat = (s: KeySpec) => {
    const group = `${s.provider}\u0000${s.organizationId ?? ""}`;
    let keys = seen.get(group);
    if (!keys) seen.set(group, (keys = new Set()));
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
