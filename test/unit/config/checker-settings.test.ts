/** The key checker's settings: defaults, and a bad value stops the start naming the variable. */
import { isConfigError } from "../../../src/config/config-error";
import { readSettings } from "../../../src/config/settings";
import { withCheckerSafety } from "../../support/checker-safety";

const fails = (env: Record<string, string>, variable: string) => {
  let thrown: unknown;
  try {
    readSettings(env);
  } catch (err) {
    thrown = err;
  }
  expect(isConfigError(thrown)).toBe(true);
  expect((thrown as Error).message).toMatch(new RegExp(`^${variable}[: ]`));
};

describe("key checker settings", () => {
  it("defaults: on, the real upstreams, 8 at once, every hour, 3 s apart, 10 s timeout", () => {
    expect(readSettings({}).checker).toEqual({
      enabled: true,
      openaiBaseUrl: "https://api.openai.com",
      anthropicBaseUrl: "https://api.anthropic.com",
      concurrency: 8,
      periodMs: 3_600_000,
      intervalMs: 3000,
      timeoutMs: 10_000,
    });
  });

  it("reads every variable; a base URL keeps its path without a trailing slash", () => {
    expect(
      readSettings({
        KEYPOOL_CHECK_KEYS: "false",
        KEYPOOL_OPENAI_BASE_URL: "https://gateway.example/openai/",
        KEYPOOL_ANTHROPIC_BASE_URL: "http://127.0.0.1:8090",
        KEYPOOL_CHECK_CONCURRENCY: "2",
        KEYPOOL_CHECK_PERIOD: "0",
        KEYPOOL_CHECK_INTERVAL: "500ms",
        KEYPOOL_CHECK_TIMEOUT: "2s",
      }).checker,
    ).toEqual({
      enabled: false,
      openaiBaseUrl: "https://gateway.example/openai",
      anthropicBaseUrl: "http://127.0.0.1:8090",
      concurrency: 2,
      periodMs: 0,
      intervalMs: 500,
      timeoutMs: 2000,
    });
  });

  it.each([
    ["KEYPOOL_CHECK_KEYS", "maybe"],
    ["KEYPOOL_OPENAI_BASE_URL", "api.openai.com"],
    ["KEYPOOL_OPENAI_BASE_URL", "ftp://127.0.0.1"],
    ["KEYPOOL_ANTHROPIC_BASE_URL", "https://user:pw@gw.example"],
    ["KEYPOOL_CHECK_CONCURRENCY", "0"],
    ["KEYPOOL_CHECK_CONCURRENCY", "eight"],
    ["KEYPOOL_CHECK_PERIOD", "hourly"],
    ["KEYPOOL_CHECK_INTERVAL", "-1s"],
    ["KEYPOOL_CHECK_TIMEOUT", "0"],
    ["KEYPOOL_CHECK_TIMEOUT", "ten seconds"],
  ])("%s=%s stops the start naming the variable", (variable, value) => fails({ [variable]: value }, variable));
});

describe("test helpers keep the checker away from real upstreams", () => {
  it("the checker is off unless both base URLs are on loopback", () => {
    expect(withCheckerSafety({}).KEYPOOL_CHECK_KEYS).toBe("false");
    expect(withCheckerSafety({ KEYPOOL_OPENAI_BASE_URL: "http://127.0.0.1:1" }).KEYPOOL_CHECK_KEYS).toBe("false");
    const local = { KEYPOOL_OPENAI_BASE_URL: "http://127.0.0.1:1", KEYPOOL_ANTHROPIC_BASE_URL: "http://127.0.0.2:2", KEYPOOL_CHECK_KEYS: "true" };
    expect(withCheckerSafety(local)).toEqual(local);
  });

  it("turning the checker on with a real upstream is refused before the server starts", () => {
    expect(() => withCheckerSafety({ KEYPOOL_CHECK_KEYS: "true" })).toThrow(/127\.0\.0\.0\/8/);
    expect(() =>
      withCheckerSafety({ KEYPOOL_CHECK_KEYS: "1", KEYPOOL_OPENAI_BASE_URL: "http://127.0.0.1:1", KEYPOOL_ANTHROPIC_BASE_URL: "https://gateway.example.com" }),
    ).toThrow();
  });
});
