import { parseDurationMs } from "../../../src/config/duration";
import { ConfigError, loadServerConfig } from "../../../src/config/server-config";

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

describe("loadServerConfig", () => {
  it("uses the documented defaults", () => {
    const config = loadServerConfig({});
    expect(config.host).toBe("127.0.0.1");
    expect(config.port).toBe(50051);
    expect(config.tls).toBeUndefined();
    expect(config.logLevel).toBe("info");
    expect(config.pool).toEqual({
      reuseDelayMs: 1000,
      leaseTtlMs: 600_000,
      maxResetMs: 10_000,
      defaultCooldownMs: 10_000,
      maxCooldownMs: 60_000,
    });
    expect(config.watch).toEqual({ heartbeatMs: 15_000, coalesceMs: 100 });
    expect(config.connections).toEqual({ headersMs: 10_000, requestMs: 30_000, idleMs: 120_000 });
    expect(config.statePath).toBeUndefined();
  });

  it("reads every setting", () => {
    const config = loadServerConfig({
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
      KEYPOOL_HEADERS_TIMEOUT: "5s",
      KEYPOOL_REQUEST_TIMEOUT: "1m",
      KEYPOOL_IDLE_TIMEOUT: "10m",
    });
    expect(config).toMatchObject({
      host: "0.0.0.0",
      port: 0,
      tls: { certFile: "/c.pem", keyFile: "/k.pem" },
      logLevel: "debug",
      pool: { reuseDelayMs: 2000, leaseTtlMs: 300_000, maxResetMs: 3000, defaultCooldownMs: 20_000, maxCooldownMs: 120_000 },
      watch: { heartbeatMs: 30_000, coalesceMs: 50 },
      connections: { headersMs: 5000, requestMs: 60_000, idleMs: 600_000 },
      statePath: "/var/lib/keypool/state.db",
    });
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
    ["KEYPOOL_IDLE_TIMEOUT", "1000h"],
  ])("stops on a bad %s (%p) with an error naming it", (name, value) => {
    let error: unknown;
    try {
      loadServerConfig({ [name]: value });
    } catch (err) {
      error = err;
    }
    expect(error).toBeInstanceOf(ConfigError);
    expect((error as ConfigError).source).toBe(name);
    expect((error as Error).message).toContain(name);
  });

  it("requires the TLS certificate and key together", () => {
    expect(() => loadServerConfig({ KEYPOOL_TLS_CERT: "/c.pem" })).toThrow(/KEYPOOL_TLS_KEY/);
    expect(() => loadServerConfig({ KEYPOOL_TLS_KEY: "/k.pem" })).toThrow(/KEYPOOL_TLS_CERT/);
  });
});
