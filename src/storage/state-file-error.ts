/**
 * A state file that keypool cannot use. Start-up stops with this message rather than carry on
 * with an empty pool, which would silently forget revoked keys, cooldowns and usage.
 */
export class StateFileError extends Error {
  override readonly name = "StateFileError";

  constructor(
    readonly path: string,
    problem: string,
    hint: string,
  ) {
    super(`keypool state file ${path}: ${problem}. keypool will not start with it. ${hint}`);
  }
}
