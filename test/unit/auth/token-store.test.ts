import fc from "fast-check";
import { TokenStore } from "../../../src/auth/token-store";
import { bearerToken } from "../../../src/auth/auth-interceptor";

describe("TokenStore", () => {
  const store = new TokenStore([
    { role: "lease", token: "lease-token" },
    { role: "watch", token: "watch-token" },
    { role: "admin", token: "admin-token" },
  ]);

  it("finds the role of each configured token", () => {
    expect(store.enabled).toBe(true);
    expect(store.roleOf("lease-token")).toBe("lease");
    expect(store.roleOf("watch-token")).toBe("watch");
    expect(store.roleOf("admin-token")).toBe("admin");
  });

  it("matches nothing but the exact token: prefixes, extensions, case and empties fail", () => {
    for (const wrong of ["", "lease", "lease-token ", "lease-tokenX", "LEASE-TOKEN", "admin-toke"]) {
      expect(store.roleOf(wrong)).toBeUndefined();
    }
  });

  it("never matches a random string (any length) that is not configured", () => {
    fc.assert(
      fc.property(fc.string({ maxLength: 200 }), (s) => {
        fc.pre(!["lease-token", "watch-token", "admin-token"].includes(s));
        return store.roleOf(s) === undefined;
      }),
      { seed: 42, numRuns: 500 },
    );
  });

  it("is disabled when no token is configured", () => {
    expect(new TokenStore([]).enabled).toBe(false);
  });
});

describe("bearerToken", () => {
  it.each([
    ["Bearer abc", "abc"],
    ["bearer abc", "abc"],
    ["BEARER   abc  ", "abc"],
    ["Basic abc", undefined],
    ["Bearer", undefined],
    ["Bearer a b", undefined],
    ["abc", undefined],
    ["", undefined],
    [null, undefined],
  ])("reads %j as %j", (header, token) => {
    expect(bearerToken(header)).toBe(token);
  });
});
