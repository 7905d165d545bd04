/**
 * A setting that stops the start. Every loader of configuration (server, keys, families, tokens,
 * limits, the listen policy) throws one of these, so main.ts prints it and exits with status 2
 * without knowing which loader failed. The message names the variable or file at fault, never a
 * secret.
 */
export class ConfigError extends Error {
  override readonly name: string = "ConfigError";
  constructor(
    /** The environment variable or file at fault. */
    readonly source: string,
    message: string,
  ) {
    super(`${source}: ${message}`);
  }
}

/** A configuration error whose message already says where it comes from. */
export class ConfigMessageError extends Error {
  override readonly name: string = "ConfigError";
}

export const isConfigError = (err: unknown): err is Error =>
  err instanceof ConfigError || err instanceof ConfigMessageError;
