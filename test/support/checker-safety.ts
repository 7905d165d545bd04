/**
 * Tests and benchmarks never reach a real upstream (docs/checker.md): a keypool they spawn runs
 * its key checker only when both upstream base URLs point at loopback (a local fake upstream).
 * Every helper that spawns a server passes its environment through here, so that a new test
 * cannot forget it.
 */

const CHECKER_ON = ["true", "1", "yes", "on"];

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
 * The environment with the key checker off unless both base URLs are local. A test that turns the
 * checker on without pointing both at a local fake is a mistake: it throws.
 */
export function withCheckerSafety<E extends Record<string, string | undefined>>(env: E): E & { KEYPOOL_CHECK_KEYS?: string } {
  if (isLoopbackUrl(env.KEYPOOL_OPENAI_BASE_URL) && isLoopbackUrl(env.KEYPOOL_ANTHROPIC_BASE_URL)) return env;
  const asked = env.KEYPOOL_CHECK_KEYS?.trim().toLowerCase();
  if (asked !== undefined && CHECKER_ON.includes(asked)) {
    throw new Error(
      "KEYPOOL_CHECK_KEYS is on but KEYPOOL_OPENAI_BASE_URL and KEYPOOL_ANTHROPIC_BASE_URL do not both point at 127.0.0.0/8: tests never contact a real upstream",
    );
  }
  // An invalid value is left for the server to refuse at start (configuration tests).
  if (asked !== undefined && asked !== "") return env;
  return { ...env, KEYPOOL_CHECK_KEYS: "false" };
}
