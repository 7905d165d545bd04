/**
 * The start-up rules of access control, on the built server as operators run it: without tokens
 * it listens on loopback and says so; a non-loopback address without tokens refuses to start
 * unless KEYPOOL_ALLOW_NO_AUTH=1; bad token or limit settings stop the start with a message that
 * names the variable and never repeats a token; KEYPOOL_TOKENS_FILE works. The loopback rule
 * holds for a replica on Redis as for the embedded pool: it is each process's own, so one replica
 * (KEYPOOL_STATE=redis://) shows it.
 */
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { KeyPoolService } from "../../gen/ts/keypool/v1/keypool_pb";
import { runServerExpectingFailure, spawnServer } from "../support/child-server";
import { startRedisServer, type RedisServer } from "../support/redis-server";

jest.setTimeout(60_000);

let redis: Promise<RedisServer> | undefined;
afterAll(async () => {
  if (redis) await (await redis).close();
});

/** The state settings of each deployment: the embedded pool, or a replica on the suite's Redis. */
const STATES: [string, () => Promise<Record<string, string>>][] = [
  ["one keypool", async () => ({})],
  ["a replica on Redis", async () => ({ KEYPOOL_STATE: (await (redis ??= startRedisServer())).url })],
];

describe.each(STATES)("starting without tokens (%s)", (_name, stateEnv) => {
  it("listens on loopback, says so, and needs no token there", async () => {
    const server = await spawnServer(await stateEnv());
    try {
      const notice = server.logs.find((l) => String(l.msg).includes("no tokens configured"));
      expect(notice?.msg).toMatch(/listening on loopback only \(127\.0\.0\.1\)/);
      const client = createClient(KeyPoolService, createGrpcTransport({ baseUrl: server.url }));
      await expect(client.listKeys({})).resolves.toBeDefined();
    } finally {
      await server.stop();
    }
  });

  it("refuses a non-loopback KEYPOOL_HOST", async () => {
    const res = await runServerExpectingFailure({ ...(await stateEnv()), KEYPOOL_HOST: "0.0.0.0" });
    expect(res.code).toBe(2);
    expect(res.stderr).toMatch(/KEYPOOL_HOST=0\.0\.0\.0 is not a loopback address and no tokens are configured/);
    expect(res.stderr).toMatch(/KEYPOOL_ALLOW_NO_AUTH=1/);
  });

  it("starts there with KEYPOOL_ALLOW_NO_AUTH=1, with a warning", async () => {
    const server = await spawnServer({ ...(await stateEnv()), KEYPOOL_HOST: "0.0.0.0", KEYPOOL_ALLOW_NO_AUTH: "1" });
    try {
      const warning = server.logs.find((l) => String(l.msg).includes("NO authentication"));
      expect(warning?.level).toBe(40);
    } finally {
      await server.stop();
    }
  });
});

describe("bad settings stop the start", () => {
  it.each([
    [{ KEYPOOL_TOKENS: "lease:ok-token,root:SECRET-not-echoed" }, /KEYPOOL_TOKENS entry 2: unknown role/],
    [{ KEYPOOL_TOKENS: "SECRET-not-echoed" }, /KEYPOOL_TOKENS entry 1: expected role:token/],
    [{ KEYPOOL_TOKENS_FILE: "/nonexistent/keypool-tokens" }, /KEYPOOL_TOKENS_FILE: cannot read/],
    [{ KEYPOOL_TOKENS: "admin:a", KEYPOOL_MAX_WATCHERS: "lots" }, /KEYPOOL_MAX_WATCHERS must be a whole number/],
    [{ KEYPOOL_TOKENS: "admin:a", KEYPOOL_MAX_MESSAGE_BYTES: "0" }, /KEYPOOL_MAX_MESSAGE_BYTES must be a whole number/],
  ])("%j", async (env, message) => {
    const res = await runServerExpectingFailure(env as Record<string, string>);
    expect(res.code).toBe(2);
    expect(res.stderr).toMatch(message);
    expect(res.stdout + res.stderr).not.toContain("SECRET");
  });
});

describe("KEYPOOL_TOKENS_FILE", () => {
  it("reads tokens from the file, comments and all", async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "keypool-tokens-"));
    const file = path.join(dir, "tokens");
    fs.writeFileSync(file, "# dashboards\nwatch:file-watch-token\n\n# proxies\nlease:file-lease-token\n", { mode: 0o600 });
    const server = await spawnServer({ KEYPOOL_TOKENS_FILE: file });
    try {
      const client = createClient(KeyPoolService, createGrpcTransport({ baseUrl: server.url }));
      await expect(client.listKeys({}, { headers: { authorization: "Bearer file-watch-token" } })).resolves.toBeDefined();
      const denied = await client.listKeys({}, { headers: { authorization: "Bearer file-lease-token" } }).catch((e) => ConnectError.from(e));
      expect((denied as ConnectError).code).toBe(Code.PermissionDenied);
      const anonymous = await client.listKeys({}).catch((e) => ConnectError.from(e));
      expect((anonymous as ConnectError).code).toBe(Code.Unauthenticated);
    } finally {
      await server.stop();
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
