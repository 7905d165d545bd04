/**
 * A provider's credential: one plain API key, or several parts (an Azure resource and
 * deployment, AWS region and key pair, a GCP service account). However many parts it has, the
 * pool keeps and leases a credential as one string, the parts joined by ":" in the order listed;
 * the last part takes the rest of the string, so it may hold ":" and newlines (a PEM private key).
 * Hashes, duplicates and storage therefore treat every provider alike.
 *
 * Messages about a credential name the provider and the part at fault, never a value.
 */

/** One part of a credential. */
export interface CredentialPart {
  /** The keys file's field (camelCase; snake_case is accepted too). */
  field: string;
  /** Shown to people: "deployment id". */
  label: string;
  /** What a valid value looks like; absent: any non-empty text. */
  shape?: RegExp;
  /** Said when the value does not have the shape: "letters, digits and '-'". */
  shapeHint?: string;
}

export interface CredentialShape {
  /** In the order they are joined; one part means a plain key. */
  parts: readonly CredentialPart[];
  /** The largest credential string accepted, in bytes. */
  maxBytes: number;
  /** The last part is PEM text: line breaks are allowed in it, other control characters not. */
  lineBreaks?: boolean;
}

export const PLAIN_KEY: CredentialShape = {
  parts: [{ field: "key", label: "API key" }],
  maxBytes: 1024,
};

/** The format a composite credential is written in, e.g. "<resource>:<deployment>:<api-key>". */
export function credentialFormat(shape: CredentialShape): string {
  return shape.parts.map((p) => `<${p.label.replace(/ /g, "-")}>`).join(":");
}

/**
 * The parts of a credential string: split at the first (n - 1) colons, each part trimmed.
 * Fewer colons give fewer parts.
 */
export function splitCredential(shape: CredentialShape, credential: string): string[] {
  if (shape.parts.length === 1) return [credential.trim()];
  const parts: string[] = [];
  let rest = credential;
  for (let i = 0; i < shape.parts.length - 1; i++) {
    const colon = rest.indexOf(":");
    if (colon < 0) break;
    parts.push(rest.slice(0, colon).trim());
    rest = rest.slice(colon + 1);
  }
  parts.push(rest.trim());
  return parts;
}

/**
 * What is wrong with a credential, or undefined when it has every part in the right shape. The
 * answer names the provider's part (never its value) and the expected format.
 */
export function credentialProblem(displayName: string, shape: CredentialShape, credential: string): string | undefined {
  if (shape.parts.length === 1) return undefined;
  const parts = splitCredential(shape, credential);
  const format = credentialFormat(shape);
  const missing = shape.parts.filter((_, i) => (parts[i] ?? "") === "").map((p) => p.label);
  if (missing.length > 0) {
    return `${displayName} credentials need ${listOf(shape.parts.map((p) => p.label))}, written "${format}"; missing: ${missing.join(", ")}`;
  }
  for (let i = 0; i < shape.parts.length; i++) {
    const part = shape.parts[i];
    if (part.shape && !part.shape.test(parts[i])) {
      return `the ${displayName} credential's ${part.label} is not valid (${part.shapeHint ?? "unexpected characters"}); the format is "${format}"`;
    }
  }
  return undefined;
}

/**
 * Joins structured parts (a keys file's fields) into the credential string. Returns the field
 * names that are absent or empty instead when some are.
 */
export function joinCredential(shape: CredentialShape, values: Record<string, unknown>): { credential: string } | { missing: string[] } {
  const missing: string[] = [];
  const parts: string[] = [];
  for (const part of shape.parts) {
    const value = values[part.field];
    if (typeof value !== "string" || value.trim() === "") missing.push(part.field);
    else parts.push(value.trim());
  }
  return missing.length > 0 ? { missing } : { credential: parts.join(":") };
}

function listOf(items: string[]): string {
  return items.length <= 1 ? items.join("") : `${items.slice(0, -1).join(", ")} and ${items[items.length - 1]}`;
}
