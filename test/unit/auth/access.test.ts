import { loadAccess } from "../../../src/auth/access";
import { readSettings } from "../../../src/config/settings";

describe("loadAccess", () => {
  it("refuses to start on a public address without tokens", () => {
    const host = { KEYPOOL_HOST: "0.0.0.0" };
    expect(() => loadAccess(readSettings(host))).toThrow(/not a loopback address/);
    expect(loadAccess(readSettings({ ...host, KEYPOOL_ALLOW_NO_AUTH: "1" })).listen.level).toBe("warn");
    expect(loadAccess(readSettings({ ...host, KEYPOOL_TOKENS: "admin:x" })).tokens.enabled).toBe(true);
  });
});
