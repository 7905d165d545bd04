/**
 * Base URLs of upstreams that have one host per resource or region (Azure, Bedrock, Vertex) are
 * templates: `https://{resource}.openai.azure.com`, `https://bedrock.{region}.amazonaws.com`. The
 * placeholders are filled from the key's credential; a URL without placeholders (a gateway, a
 * local fake) is used as it is.
 */

/** Fills `{name}` placeholders. A value must be a host label: the credential shapes allow no other. */
export function fillUrlTemplate(template: string, values: Readonly<Record<string, string>>): string {
  return template.replace(/\{([a-z]+)\}/g, (_, name: string) => {
    const value = values[name];
    if (value === undefined || !/^[A-Za-z0-9][A-Za-z0-9-]*$/.test(value)) throw new Error(`no host label for {${name}}`);
    return value.toLowerCase();
  });
}

/** The placeholders a template names, in order. */
export function placeholdersOf(template: string): string[] {
  return [...template.matchAll(/\{([^}]*)\}/g)].map((m) => m[1]);
}
