/**
 * The operator's model family table (KEYPOOL_MODEL_FAMILIES) and allowed families
 * (ALLOWED_MODEL_FAMILIES). Operator rows are tried before the built-in table, so they both
 * extend it (new models) and override it (a model moved to another family).
 *
 * KEYPOOL_MODEL_FAMILIES is either
 *  - inline rows, separated by ";" or newlines: `provider:regex=family`, e.g.
 *    `openai:^ft:gpt-4o-mini=turbo;anthropic:^claude-next=claude-opus`
 *    (the provider ends at the first ":", the family starts after the last "="); or
 *  - the path of a JSON or YAML file holding a list of {provider, pattern, family}
 *    (chosen when the value contains no "=").
 */
import { extname } from "node:path";
import { parseYaml } from "./yaml-text";
import { FamilyTable, type OperatorFamilyRule } from "../domain/model-families";
import { isProviderId, PROVIDERS } from "../domain/providers";
import { readConfigFile, readTextFile, type ReadFile } from "./config-file";
import { ConfigError } from "./config-error";
import type { Settings } from "./settings";

export class FamilyConfigError extends ConfigError {
  override readonly name = "FamilyConfigError";
}


const FAMILY_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;

export interface FamilyConfig {
  families: FamilyTable;
  /** null: every family may be leased. */
  allowedFamilies: ReadonlySet<string> | null;
}

/** Reads both settings; throws FamilyConfigError naming the variable, file or row at fault. */
export function loadFamilyConfig(settings: Settings["families"], readFile: ReadFile = readTextFile): FamilyConfig {
  const families = loadFamilyTable(settings.table, readFile);
  const allowedFamilies = parseAllowedFamilies(settings.allowed, families);
  return { families, allowedFamilies };
}

export function loadFamilyTable(value: string | undefined, readFile: ReadFile = readTextFile): FamilyTable {
  const text = value?.trim();
  if (!text) return FamilyTable.builtIn();
  const rules = text.includes("=") ? parseInlineRules(text) : parseRulesFile(text, readFile);
  return FamilyTable.builtIn().withOperatorRules(rules);
}

export function parseInlineRules(text: string): OperatorFamilyRule[] {
  return text
    .split(/[;\n]/)
    .map((row) => row.trim())
    .filter((row) => row.length > 0)
    .map((row, i) => {
      const where = `KEYPOOL_MODEL_FAMILIES row ${i + 1}`;
      const colon = row.indexOf(":");
      const eq = row.lastIndexOf("=");
      if (colon <= 0 || eq < colon) throw new FamilyConfigError(where, `${JSON.stringify(row)} is not provider:regex=family`);
      return rule(row.slice(0, colon), row.slice(colon + 1, eq), row.slice(eq + 1), where);
    });
}

function parseRulesFile(path: string, readFile: ReadFile): OperatorFamilyRule[] {
  const text = readConfigFile(
    path,
    readFile,
    (code) => new FamilyConfigError(path, `cannot read the family table named by KEYPOOL_MODEL_FAMILIES (${code ?? "error"})`),
  );
  let doc: unknown;
  try {
    doc = extname(path).toLowerCase() === ".json" ? JSON.parse(text) : parseYaml(text);
  } catch (error) {
    throw new FamilyConfigError(path, `is not valid JSON or YAML: ${(error as Error).message}`);
  }
  if (!Array.isArray(doc)) throw new FamilyConfigError(path, "must hold a list of {provider, pattern, family}");
  return doc.map((row, i) => {
    const where = `${path}: entry ${i + 1}`;
    if (typeof row !== "object" || row === null) throw new FamilyConfigError(where, "must be {provider, pattern, family}");
    const r = row as Record<string, unknown>;
    return rule(r.provider, r.pattern, r.family, where);
  });
}

function rule(provider: unknown, pattern: unknown, family: unknown, where: string): OperatorFamilyRule {
  const p = typeof provider === "string" ? provider.trim().toLowerCase() : provider;
  if (!isProviderId(p)) throw new FamilyConfigError(where, `provider must be one of ${PROVIDERS.map((x) => `"${x.id}"`).join(", ")}`);
  if (typeof pattern !== "string" || pattern.trim().length === 0) throw new FamilyConfigError(where, "pattern is empty");
  let regex: RegExp;
  try {
    regex = new RegExp(pattern.trim());
  } catch (error) {
    throw new FamilyConfigError(where, `pattern ${JSON.stringify(pattern)} is not a regular expression: ${(error as Error).message}`);
  }
  const f = typeof family === "string" ? family.trim() : "";
  if (!FAMILY_NAME.test(f)) {
    throw new FamilyConfigError(where, `family ${JSON.stringify(family)} must be 1-64 letters, digits, ".", "_" or "-"`);
  }
  return { provider: p, pattern: regex, family: f };
}

/** ALLOWED_MODEL_FAMILIES: comma separated; every name must be a family of the table. */
export function parseAllowedFamilies(value: string | undefined, table: FamilyTable): ReadonlySet<string> | null {
  const names = (value ?? "").split(",").map((s) => s.trim()).filter((s) => s.length > 0);
  if (names.length === 0) return null;
  const known = table.allFamilies();
  const unknown = names.filter((n) => !known.has(n));
  if (unknown.length > 0) {
    throw new FamilyConfigError(
      "ALLOWED_MODEL_FAMILIES",
      `unknown famil${unknown.length === 1 ? "y" : "ies"} ${unknown.join(", ")} (known: ${[...known].join(", ")})`,
    );
  }
  return new Set(names);
}
