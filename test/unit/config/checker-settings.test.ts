/** The key checker's settings: defaults, and a bad value stops the start naming the variable. */
import { isConfigError } from "../../../src/config/config-error";
import { allSettings, readSettings } from "../../../src/config/settings";
import { CHECKER_URL_VARIABLES, fakeUpstreamEnv, withCheckerSafety } from "../../support/checker-safety";

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
  it("defaults: on, the documented upstreams, 8 at once, every hour, 3 s apart, 10 s timeout", () => {
    // Each URL's default is the settings table's own (the README's copy is checked against the
    // table in readme-config.test.ts); here only that it is https, and not a loopback stand-in.
    const table = new Map(allSettings().map((s) => [s.name, s.default]));
    const checker = readSettings({}).checker;
    const urls = {
      openaiBaseUrl: "KEYPOOL_OPENAI_BASE_URL",
      anthropicBaseUrl: "KEYPOOL_ANTHROPIC_BASE_URL",
      googleAiBaseUrl: "KEYPOOL_GOOGLE_AI_BASE_URL",
      mistralBaseUrl: "KEYPOOL_MISTRAL_BASE_URL",
      azureBaseUrl: "KEYPOOL_AZURE_BASE_URL",
      bedrockBaseUrl: "KEYPOOL_BEDROCK_BASE_URL",
      vertexBaseUrl: "KEYPOOL_VERTEX_BASE_URL",
      vertexTokenUrl: "KEYPOOL_VERTEX_TOKEN_URL",
    } as const;
    for (const [field, variable] of Object.entries(urls)) {
      const value = checker[field as keyof typeof urls];
      expect({ variable, value }).toEqual({ variable, value: table.get(variable) });
      expect(value).toMatch(/^https:\/\/[^/]+\.[a-z]+(\/|$)/);
    }
    expect(checker.azureBaseUrl).toContain("{resource}");
    expect(checker.bedrockBaseUrl).toContain("{region}");
    expect(checker.vertexBaseUrl).toContain("{region}");
    expect({ ...checker, ...Object.fromEntries(Object.keys(urls).map((field) => [field, "url"])) }).toEqual({
      enabled: true,
      ...Object.fromEntries(Object.keys(urls).map((field) => [field, "url"])),
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
        KEYPOOL_GOOGLE_AI_BASE_URL: "https://gw.example/google/",
        KEYPOOL_MISTRAL_BASE_URL: "http://127.0.0.1:8090",
        KEYPOOL_AZURE_BASE_URL: "https://{resource}.gw.example/azure/",
        KEYPOOL_BEDROCK_BASE_URL: "http://127.0.0.1:8090/bedrock",
        KEYPOOL_VERTEX_BASE_URL: "https://gw.example/vertex/{region}",
        KEYPOOL_VERTEX_TOKEN_URL: "http://127.0.0.1:8090/token",
        KEYPOOL_CHECK_CONCURRENCY: "2",
        KEYPOOL_CHECK_PERIOD: "0",
        KEYPOOL_CHECK_INTERVAL: "500ms",
        KEYPOOL_CHECK_TIMEOUT: "2s",
      }).checker,
    ).toEqual({
      enabled: false,
      openaiBaseUrl: "https://gateway.example/openai",
      anthropicBaseUrl: "http://127.0.0.1:8090",
      googleAiBaseUrl: "https://gw.example/google",
      mistralBaseUrl: "http://127.0.0.1:8090",
      azureBaseUrl: "https://{resource}.gw.example/azure",
      bedrockBaseUrl: "http://127.0.0.1:8090/bedrock",
      vertexBaseUrl: "https://gw.example/vertex/{region}",
      vertexTokenUrl: "http://127.0.0.1:8090/token",
      concurrency: 2,
      periodMs: 0,
      intervalMs: 500,
      timeoutMs: 2000,
    });
  });

  it.each([
    ["KEYPOOL_CHECK_KEYS", "maybe"],
    ["KEYPOOL_OPENAI_BASE_URL", "gw.example"],
    ["KEYPOOL_OPENAI_BASE_URL", "ftp://127.0.0.1"],
    ["KEYPOOL_ANTHROPIC_BASE_URL", "https://user:pw@gw.example"],
    ["KEYPOOL_GOOGLE_AI_BASE_URL", "gw.example/google"],
    ["KEYPOOL_MISTRAL_BASE_URL", "https://gw.example?key=1"],
    ["KEYPOOL_AZURE_BASE_URL", "https://{region}.gw.example"],
    ["KEYPOOL_AZURE_BASE_URL", "https://{resource.gw.example"],
    ["KEYPOOL_BEDROCK_BASE_URL", "https://bedrock.{resource}.gw.example"],
    ["KEYPOOL_BEDROCK_BASE_URL", "ftp://bedrock.{region}.gw.example"],
    ["KEYPOOL_VERTEX_BASE_URL", "https://{}-vertex.gw.example"],
    ["KEYPOOL_VERTEX_BASE_URL", "https://user:pw@{region}-vertex.gw.example"],
    ["KEYPOOL_VERTEX_TOKEN_URL", "gw.example/token"],
    ["KEYPOOL_CHECK_CONCURRENCY", "0"],
    ["KEYPOOL_CHECK_CONCURRENCY", "eight"],
    ["KEYPOOL_CHECK_PERIOD", "hourly"],
    ["KEYPOOL_CHECK_INTERVAL", "-1s"],
    ["KEYPOOL_CHECK_TIMEOUT", "0"],
    ["KEYPOOL_CHECK_TIMEOUT", "ten seconds"],
  ])("%s=%s stops the start naming the variable", (variable, value) => fails({ [variable]: value }, variable));
});

describe("test helpers keep the checker away from real upstreams", () => {
  it("the checker is off unless every checker URL is on loopback", () => {
    expect(withCheckerSafety({}).KEYPOOL_CHECK_KEYS).toBe("false");
    expect(withCheckerSafety({ KEYPOOL_OPENAI_BASE_URL: "http://127.0.0.1:1" }).KEYPOOL_CHECK_KEYS).toBe("false");
    const local = { ...fakeUpstreamEnv("http://127.0.0.2:2"), KEYPOOL_CHECK_KEYS: "true" };
    expect(withCheckerSafety(local)).toEqual(local);
    expect(local.KEYPOOL_VERTEX_TOKEN_URL).toBe("http://127.0.0.2:2/token");
  });

  it("turning the checker on with a real upstream is refused before the server starts", () => {
    expect(() => withCheckerSafety({ KEYPOOL_CHECK_KEYS: "true" })).toThrow(/127\.0\.0\.0\/8/);
    expect(() =>
      withCheckerSafety({ KEYPOOL_CHECK_KEYS: "1", KEYPOOL_OPENAI_BASE_URL: "http://127.0.0.1:1", KEYPOOL_ANTHROPIC_BASE_URL: "https://gateway.example.com" }),
    ).toThrow();
  });

  it.each(CHECKER_URL_VARIABLES)("one URL left at its real default, %s, is refused too", (variable) => {
    const env: Record<string, string> = { ...fakeUpstreamEnv("http://127.0.0.1:1"), KEYPOOL_CHECK_KEYS: "true" };
    delete env[variable];
    expect(() => withCheckerSafety(env)).toThrow(new RegExp(variable));
  });

  it("every checker URL setting is guarded", () => {
    const urlSettings = allSettings().filter((s) => /_(BASE|TOKEN)_URL$/.test(s.name) && s.name.startsWith("KEYPOOL_"));
    expect(urlSettings.map((s) => s.name).sort()).toEqual([...CHECKER_URL_VARIABLES].sort());
  });
});
