import { ConfigError, ConfigMessageError } from "../../../src/config/config-error";
import { formatDurationMs, parseDurationMs } from "../../../src/domain/duration";
import { allSettings, readSettings, tlsFiles, unknownSettings } from "../../../src/config/settings";

describe("parseDurationMs", () => {
  it.each([
    ["1500", 1500],
    ["0", 0],
    ["250ms", 250],
    ["10s", 10_000],
    ["1.5s", 1500],
    ["1m", 60_000],
    ["1h", 3_600_000],
    ["1m30s", 90_000],
    [" 2s ", 2000],
  ])("reads %p as %p ms", (text, ms) => {
    expect(parseDurationMs(text)).toBe(ms);
  });

  it.each(["", "abc", "-1", "10 s", "1d", "s", "1e3"])("rejects %p", (text) => {
    expect(parseDurationMs(text)).toBeUndefined();
  });
});

describe("formatDurationMs", () => {
  it.each([
    [1000, "1s"],
    [600_000, "10m"],
    [100, "100ms"],
    [3_600_000, "1h"],
    [1500, "1500ms"],
    [0, "0ms"],
  ])("writes %p ms as %p, which reads back the same", (ms, text) => {
    expect(formatDurationMs(ms)).toBe(text);
    expect(parseDurationMs(text)).toBe(ms);
  });
});

describe("readSettings", () => {
  it("uses the documented defaults", () => {
    const settings = readSettings({});
    expect(settings.server.host).toBe("127.0.0.1");
    expect(settings.server.port).toBe(50051);
    expect(tlsFiles(settings.server)).toBeUndefined();
    expect(settings.server.logLevel).toBe("info");
    expect(settings.pool).toEqual({
      reuseDelayMs: 1000,
      leaseTtlMs: 600_000,
      maxResetMs: 10_000,
      defaultCooldownMs: 10_000,
      maxCooldownMs: 60_000,
      maxWaitersPerFamily: 10_000,
      maxWaiters: 5000,
    });
    expect(settings.watch).toEqual({ heartbeatMs: 15_000, coalesceMs: 100, maxWatchers: 1000 });
    expect(settings.limits).toEqual({
      maxMessageBytes: 4 * 1024 * 1024,
      maxConcurrentStreams: 1000,
      maxHeaderBytes: 64 * 1024,
      maxConnections: 4096,
      maxConnectionsPerAddress: 512,
      maxStreamResets: 1000,
    });
    expect(settings.connections).toEqual({ headersMs: 10_000, requestMs: 30_000, idleMs: 120_000 });
    expect(settings.storage.state).toBe("./data/keypool.db");
    expect(settings.access).toEqual({ tokens: "", tokensFile: "", allowNoAuth: false });
  });

  it("reads every setting", () => {
    const settings = readSettings({
      KEYPOOL_HOST: "0.0.0.0",
      KEYPOOL_PORT: "0",
      KEYPOOL_TLS_CERT: "/c.pem",
      KEYPOOL_TLS_KEY: "/k.pem",
      KEYPOOL_LOG_LEVEL: "DEBUG",
      KEYPOOL_REUSE_DELAY: "2s",
      KEYPOOL_LEASE_TTL: "5m",
      KEYPOOL_MAX_RESET: "3000",
      KEYPOOL_DEFAULT_COOLDOWN: "20s",
      KEYPOOL_MAX_COOLDOWN: "2m",
      KEYPOOL_WATCH_HEARTBEAT: "30s",
      KEYPOOL_WATCH_COALESCE: "50ms",
      KEYPOOL_STATE: "/var/lib/keypool/state.db",
      KEYPOOL_MAX_MESSAGE_BYTES: "65536",
      KEYPOOL_MAX_WATCHERS: "2",
      KEYPOOL_MAX_WAITERS: "3",
      KEYPOOL_MAX_CONCURRENT_STREAMS: "50",
      KEYPOOL_MAX_HEADER_BYTES: "8192",
      KEYPOOL_ALLOW_NO_AUTH: "1",
      KEYPOOL_MAX_WAITERS_TOTAL: "4",
      KEYPOOL_MAX_CONNECTIONS: "100",
      KEYPOOL_MAX_CONNECTIONS_PER_ADDRESS: "10",
      KEYPOOL_MAX_STREAM_RESETS: "20",
      KEYPOOL_HEADERS_TIMEOUT: "5s",
      KEYPOOL_REQUEST_TIMEOUT: "1m",
      KEYPOOL_IDLE_TIMEOUT: "10m",
    });
    expect(settings).toMatchObject({
      server: { host: "0.0.0.0", port: 0, logLevel: "debug" },
      pool: { reuseDelayMs: 2000, leaseTtlMs: 300_000, maxResetMs: 3000, defaultCooldownMs: 20_000, maxCooldownMs: 120_000, maxWaitersPerFamily: 3, maxWaiters: 4 },
      watch: { heartbeatMs: 30_000, coalesceMs: 50, maxWatchers: 2 },
      limits: { maxMessageBytes: 65536, maxConcurrentStreams: 50, maxHeaderBytes: 8192, maxConnections: 100, maxConnectionsPerAddress: 10, maxStreamResets: 20 },
      connections: { headersMs: 5000, requestMs: 60_000, idleMs: 600_000 },
      storage: { state: "/var/lib/keypool/state.db" },
      access: { allowNoAuth: true },
    });
    expect(tlsFiles(settings.server)).toEqual({ certFile: "/c.pem", keyFile: "/k.pem" });
  });

  it.each([
    ["KEYPOOL_PORT", "http"],
    ["KEYPOOL_PORT", "70000"],
    ["KEYPOOL_PORT", "-1"],
    ["KEYPOOL_REUSE_DELAY", "soon"],
    ["KEYPOOL_LEASE_TTL", "0"],
    ["KEYPOOL_MAX_RESET", "10x"],
    ["KEYPOOL_DEFAULT_COOLDOWN", "-5s"],
    ["KEYPOOL_MAX_COOLDOWN", "1 minute"],
    ["KEYPOOL_WATCH_HEARTBEAT", "fast"],
    ["KEYPOOL_WATCH_COALESCE", "1d"],
    ["KEYPOOL_LOG_LEVEL", "loud"],
    ["KEYPOOL_HEADERS_TIMEOUT", "0"],
    ["KEYPOOL_REQUEST_TIMEOUT", "forever"],
    ["KEYPOOL_IDLE_TIMEOUT", "0s"],
    // Past what a timer holds (about 24.8 days), node would fire it at once.
    ["KEYPOOL_IDLE_TIMEOUT", "1000h"],
  ])("stops on a bad %s (%p) with an error naming it", (name, value) => {
    let error: unknown;
    try {
      readSettings({ [name]: value });
    } catch (err) {
      error = err;
    }
    expect(error).toBeInstanceOf(ConfigError);
    expect((error as ConfigError).source).toBe(name);
    expect((error as Error).message).toContain(name);
  });

  it.each(["abc", "-1", "0", "1.5", "1e6", "99999999999999"])("refuses KEYPOOL_MAX_WATCHERS=%s", (raw) => {
    expect(() => readSettings({ KEYPOOL_MAX_WATCHERS: raw })).toThrow(ConfigMessageError);
    expect(() => readSettings({ KEYPOOL_MAX_WATCHERS: raw })).toThrow(/^KEYPOOL_MAX_WATCHERS must be/);
  });

  it("requires the TLS certificate and key together", () => {
    expect(() => readSettings({ KEYPOOL_TLS_CERT: "/c.pem" })).toThrow(/KEYPOOL_TLS_KEY/);
    expect(() => readSettings({ KEYPOOL_TLS_KEY: "/k.pem" })).toThrow(/KEYPOOL_TLS_CERT/);
  });

  it("gives every variable one row", () => {
    const names = allSettings().map((s) => s.name);
    expect(new Set(names).size).toBe(names.length);
  });
});

describe("unknownSettings", () => {
  it("names a misspelt KEYPOOL_* variable and the nearest known one", () => {
    expect(
      unknownSettings({ KEYPOOL_REUSE_DELAYS: "2s", KEYPOOL_PROT: "1", KEYPOOL_PORT: "1", HOME: "/root", OPENAI_KEYS: "x" }),
    ).toEqual([
      { name: "KEYPOOL_PROT", nearest: "KEYPOOL_PORT" },
      { name: "KEYPOOL_REUSE_DELAYS", nearest: "KEYPOOL_REUSE_DELAY" },
    ]);
  });

  it("says nothing about known variables, the keypool-watch ones included", () => {
    const env = Object.fromEntries(allSettings().map((s) => [s.name, "x"]));
    expect(unknownSettings(env)).toEqual([]);
  });
});
