import { DEFAULT_LIMITS, loadAccessLimits, http2ServerLimits } from "../../../src/auth/access-limits";
import { loadAccess } from "../../../src/auth/access";

describe("access limits", () => {
  it("defaults to 4 MiB messages, 1000 watchers, 10000 waiters per family", () => {
    expect(loadAccessLimits({})).toEqual(DEFAULT_LIMITS);
    expect(DEFAULT_LIMITS.maxMessageBytes).toBe(4 * 1024 * 1024);
  });

  it("reads each variable", () => {
    expect(
      loadAccessLimits({
        KEYPOOL_MAX_MESSAGE_BYTES: "65536",
        KEYPOOL_MAX_WATCHERS: "2",
        KEYPOOL_MAX_WAITERS: "3",
        KEYPOOL_MAX_WAITERS_TOTAL: "4",
        KEYPOOL_MAX_CONCURRENT_STREAMS: "50",
        KEYPOOL_MAX_HEADER_BYTES: "8192",
        KEYPOOL_MAX_CONNECTIONS: "100",
        KEYPOOL_MAX_CONNECTIONS_PER_ADDRESS: "10",
        KEYPOOL_MAX_STREAM_RESETS: "20",
      }),
    ).toEqual({
      maxMessageBytes: 65536,
      maxWatchers: 2,
      maxWaitersPerFamily: 3,
      maxWaiters: 4,
      maxConcurrentStreams: 50,
      maxHeaderBytes: 8192,
      maxConnections: 100,
      maxConnectionsPerAddress: 10,
      maxStreamResets: 20,
    });
  });

  it.each(["abc", "-1", "0", "1.5", "1e6", "99999999999999"])("refuses KEYPOOL_MAX_WATCHERS=%s", (raw) => {
    expect(() => loadAccessLimits({ KEYPOOL_MAX_WATCHERS: raw })).toThrow(/^KEYPOOL_MAX_WATCHERS must be/);
  });

  it("hands HTTP/2 limits to the listener", () => {
    const o = http2ServerLimits({ ...DEFAULT_LIMITS, maxConcurrentStreams: 7, maxHeaderBytes: 4096 });
    expect(o.settings).toEqual({ maxConcurrentStreams: 7, maxHeaderListSize: 4096 });
  });
});

describe("loadAccess", () => {
  it("refuses to start on a public address without tokens", () => {
    expect(() => loadAccess({}, "0.0.0.0")).toThrow(/not a loopback address/);
    expect(loadAccess({ KEYPOOL_ALLOW_NO_AUTH: "1" }, "0.0.0.0").listen.level).toBe("warn");
    expect(loadAccess({ KEYPOOL_TOKENS: "admin:x" }, "0.0.0.0").tokens.enabled).toBe(true);
  });
});
