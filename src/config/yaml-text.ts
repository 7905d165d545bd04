/**
 * YAML parsing for the configuration files that may be YAML (keys, model families). The parser
 * is loaded at the first YAML file read, not with the server: most starts read none.
 */
export function parseYaml(text: string): unknown {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  return (require("yaml") as typeof import("yaml")).parse(text);
}
