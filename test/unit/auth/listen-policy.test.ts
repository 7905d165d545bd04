import { decideListen, isLoopbackHost, ListenPolicyError } from "../../../src/auth/listen-policy";

describe("loopback addresses", () => {
  it.each(["127.0.0.1", "127.1.2.3", "::1", "[::1]", "localhost", "LOCALHOST", "::ffff:127.0.0.1"])(
    "%s is loopback",
    (host) => expect(isLoopbackHost(host)).toBe(true),
  );
  it.each(["0.0.0.0", "::", "10.0.0.1", "192.168.1.2", "example.com", "128.0.0.1", "::ffff:10.0.0.1", ""])(
    "%s is not loopback",
    (host) => expect(isLoopbackHost(host)).toBe(false),
  );
});

describe("running without tokens", () => {
  it("listens on loopback and says so", () => {
    const d = decideListen({ host: "127.0.0.1", tokensConfigured: false, allowNoAuth: false });
    expect(d.level).toBe("info");
    expect(d.message).toMatch(/no tokens configured.*loopback only \(127\.0\.0\.1\)/);
  });

  it("refuses a non-loopback address, naming the way out", () => {
    expect(() => decideListen({ host: "0.0.0.0", tokensConfigured: false, allowNoAuth: false })).toThrow(
      ListenPolicyError,
    );
    expect(() => decideListen({ host: "0.0.0.0", tokensConfigured: false, allowNoAuth: false })).toThrow(
      /KEYPOOL_HOST=0\.0\.0\.0.*KEYPOOL_TOKENS.*KEYPOOL_ALLOW_NO_AUTH=1/,
    );
  });

  it("allows it with KEYPOOL_ALLOW_NO_AUTH=1, with a warning", () => {
    const d = decideListen({ host: "0.0.0.0", tokensConfigured: false, allowNoAuth: true });
    expect(d.level).toBe("warn");
    expect(d.message).toMatch(/NO authentication/);
  });

  it("lets any address listen once tokens are configured", () => {
    expect(decideListen({ host: "0.0.0.0", tokensConfigured: true, allowNoAuth: false }).level).toBe("info");
  });
});
