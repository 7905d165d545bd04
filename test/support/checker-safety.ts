/**
 * Tests and benchmarks never reach a real upstream (docs/checker.md): a keypool they spawn runs
 * its key checker only when every upstream URL of the checker points at loopback (a local fake
 * upstream). Every helper that spawns a server passes its environment through here, so that a
 * new test cannot forget it.
 */

const CHECKER_ON = ["true", "1", "yes", "on"];

/** Every setting naming where the checker sends a key (src/config/settings.ts, `checker`). */
export const CHECKER_URL_VARIABLES = [
  "KEYPOOL_OPENAI_BASE_URL",
  "KEYPOOL_ANTHROPIC_BASE_URL",
  "KEYPOOL_GOOGLE_AI_BASE_URL",
  "KEYPOOL_MISTRAL_BASE_URL",
  "KEYPOOL_AZURE_BASE_URL",
  "KEYPOOL_BEDROCK_BASE_URL",
  "KEYPOOL_VERTEX_BASE_URL",
  "KEYPOOL_VERTEX_TOKEN_URL",
] as const;

/** Every checker URL pointed at a fake upstream's base URL (its token endpoint is `/token`). */
export function fakeUpstreamEnv(fakeUrl: string): Record<(typeof CHECKER_URL_VARIABLES)[number], string> {
  const env = Object.fromEntries(CHECKER_URL_VARIABLES.map((name) => [name, fakeUrl])) as Record<(typeof CHECKER_URL_VARIABLES)[number], string>;
  env.KEYPOOL_VERTEX_TOKEN_URL = `${fakeUrl}/token`;
  return env;
}

function isLoopbackUrl(value: string | undefined): boolean {
  if (!value) return false;
  try {
    const host = new URL(value).hostname;
    return /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(host) || host === "[::1]" || host === "localhost";
  } catch {
    return false;
  }
}

/**
 * The environment with the key checker off unless every checker URL is local. A test that turns
 * the checker on without pointing them all at a local fake is a mistake: it throws.
 */
export function withCheckerSafety<E extends Record<string, string | undefined>>(env: E): E & { KEYPOOL_CHECK_KEYS?: string } {
  const remote = CHECKER_URL_VARIABLES.filter((name) => !isLoopbackUrl(env[name]));
  if (remote.length === 0) return env;
  const asked = env.KEYPOOL_CHECK_KEYS?.trim().toLowerCase();
  if (asked !== undefined && CHECKER_ON.includes(asked)) {
    throw new Error(`KEYPOOL_CHECK_KEYS is on but ${remote.join(", ")} do not point at 127.0.0.0/8: tests never contact a real upstream`);
  }
  // An invalid value is left for the server to refuse at start (configuration tests).
  if (asked !== undefined && asked !== "") return env;
  return { ...env, KEYPOOL_CHECK_KEYS: "false" };
}
