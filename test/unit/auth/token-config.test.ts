import { loadTokens, parseTokenFile, parseTokenList, TokenConfigError } from "../../../src/auth/token-config";
import { readSettings } from "../../../src/config/settings";

describe("KEYPOOL_TOKENS", () => {
  it("reads role:token pairs, trimmed, empties dropped, roles case-insensitive", () => {
    expect(parseTokenList(" lease:aaa , WATCH:bbb,,admin:c:c:c ,")).toEqual([
      { role: "lease", token: "aaa" },
      { role: "watch", token: "bbb" },
      { role: "admin", token: "c:c:c" },
    ]);
  });

  it.each([
    ["no colon", "justatoken-s3cret"],
    ["unknown role", "owner:s3cret-token"],
    ["empty token", "lease:"],
    ["empty role", ":s3cret-token"],
    ["space inside the token", "lease:s3cret token"],
    ["non-ASCII token", "lease:s3cret-tökén"],
  ])("refuses %s, naming the variable and entry but never the token", (_why, entry) => {
    let error: unknown;
    try {
      parseTokenList(`lease:fine-token,${entry}`);
    } catch (err) {
      error = err;
    }
    expect(error).toBeInstanceOf(TokenConfigError);
    const message = (error as Error).message;
    expect(message).toMatch(/^KEYPOOL_TOKENS entry 2: /);
    expect(message).not.toContain("s3cret");
    expect(message).not.toContain("fine-token");
  });
});

describe("KEYPOOL_TOKENS_FILE", () => {
  it("reads one entry a line, skipping comments and blank lines", () => {
    const text = "# proxies\nlease:one\n\n  # dashboards\nwatch:two\r\nadmin:three\n";
    expect(parseTokenFile(text)).toEqual([
      { role: "lease", token: "one" },
      { role: "watch", token: "two" },
      { role: "admin", token: "three" },
    ]);
  });

  it("names the file and line of a bad entry", () => {
    const env = { KEYPOOL_TOKENS_FILE: "/etc/keypool/tokens" };
    expect(() => loadTokens(readSettings(env).access, () => "lease:ok\nbogus:s3cret\n")).toThrow(
      "KEYPOOL_TOKENS_FILE (/etc/keypool/tokens) line 2: unknown role",
    );
  });

  it("says when the file cannot be read", () => {
    expect(() => loadTokens(readSettings({ KEYPOOL_TOKENS_FILE: "/nonexistent/keypool-tokens" }).access)).toThrow(
      /KEYPOOL_TOKENS_FILE: cannot read \/nonexistent\/keypool-tokens \(ENOENT\)/,
    );
  });

  it("adds up both sources and refuses a token configured twice", () => {
    const env = { KEYPOOL_TOKENS: "lease:a", KEYPOOL_TOKENS_FILE: "/f" };
    expect(loadTokens(readSettings(env).access, () => "watch:b")).toEqual([
      { role: "lease", token: "a" },
      { role: "watch", token: "b" },
    ]);
    expect(() => loadTokens(readSettings(env).access, () => "admin:a")).toThrow(/same token is configured more than once/);
  });

  it("treats no variables as no tokens", () => {
    expect(loadTokens(readSettings({}).access)).toEqual([]);
    expect(loadTokens(readSettings({ KEYPOOL_TOKENS: "" }).access)).toEqual([]);
  });
});
