/**
 * Secret hygiene, end to end: the built server runs as a child at trace level with known API keys
 * (from the environment and from AddKeys) and known bearer tokens, and a full scenario runs
 * against it (watch, list, add, lease, report, use, revoke, disable, enable, remove, and a row of
 * mistakes: wrong tokens, a key presented as a token, a wrong role, an over-long key, unknown
 * hashes). No secret may appear in the captured logs, in any ListKeys or WatchKeys message, or in
 * any error's message, metadata or details. Only Lease returns a key, as it should.
 */
import { toJsonString, toBinary } from "@bufbuild/protobuf";
import { Code, ConnectError, createClient, type Client } from "@connectrpc/connect";
import { createConnectTransport, createGrpcTransport } from "@connectrpc/connect-node";
import {
  KeyAdminService,
  KeyPoolService,
  KeyState,
  ListKeysResponseSchema,
  Provider,
  WatchKeysResponseSchema,
  type WatchKeysResponse,
} from "../../gen/ts/keypool/v1/keypool_pb";
import { spawnServer, type ChildServer } from "../support/child-server";

const ENV_OPENAI = ["sk-proj-SECRETenvOpenAI000001", "sk-proj-SECRETenvOpenAI000002"];
const ENV_ANTHROPIC = ["sk-ant-api03-SECRETenvAnthropic01"];
const ADDED = ["sk-proj-SECRETaddedOpenAI00003", "sk-proj-SECRETaddedOrgKey000004"];
const ADDED_ANTHROPIC = "sk-ant-api03-SECRETaddedAnthropic2";
const TOO_LONG = `sk-proj-SECRETtooLong-${"z".repeat(1100)}`;
const TOKENS = { lease: "SECRETtokLease-4f1e9a2b", watch: "SECRETtokWatch-77c0d3e1", admin: "SECRETtokAdmin-0b5a6c48" };
const WRONG_TOKEN = "SECRETtokWrong-e3e3e3e3";
const HEADER_SECRET = "SECRETheaderValue-5d5d5d";

/** Everything that must never leave the server except through Lease. */
const SECRETS = [...ENV_OPENAI, ...ENV_ANTHROPIC, ...ADDED, ADDED_ANTHROPIC, TOO_LONG.slice(0, 40), ...Object.values(TOKENS), WRONG_TOKEN, HEADER_SECRET];
/** A fragment shared by all of them, to catch a secret even when cut or re-encoded partly. */
const MARK = "SECRET";

const auth = (token: string) => ({ authorization: `Bearer ${token}` });

let server: ChildServer;
const watched: WatchKeysResponse[] = [];
const listed: string[] = [];
const errors: ConnectError[] = [];
const leasedKeys: string[] = [];

async function expectError(p: Promise<unknown>, code: Code): Promise<void> {
  try {
    await p;
  } catch (err) {
    const e = ConnectError.from(err);
    errors.push(e);
    expect(Code[e.code]).toBe(Code[code]);
    return;
  }
  throw new Error(`expected ${Code[code]}, the call succeeded`);
}

beforeAll(async () => {
  server = await spawnServer({
    KEYPOOL_LOG_LEVEL: "trace",
    KEYPOOL_TOKENS: `lease:${TOKENS.lease},watch:${TOKENS.watch},admin:${TOKENS.admin}`,
    OPENAI_KEY: ENV_OPENAI.join(","),
    ANTHROPIC_KEY: ENV_ANTHROPIC.join(","),
    KEYPOOL_REUSE_DELAY: "0",
    KEYPOOL_WATCH_COALESCE: "0",
  });
}, 60_000);
afterAll(async () => {
  if (server) await server.stop();
});

describe("a full scenario at trace level with known secrets", () => {
  it("runs, and no secret leaks anywhere but Lease", async () => {
    const grpc = createGrpcTransport({ baseUrl: server.url });
    const connect = createConnectTransport({ baseUrl: server.url, httpVersion: "1.1", useBinaryFormat: false });
    const pools: Client<typeof KeyPoolService>[] = [createClient(KeyPoolService, grpc), createClient(KeyPoolService, connect)];
    const admins: Client<typeof KeyAdminService>[] = [createClient(KeyAdminService, grpc), createClient(KeyAdminService, connect)];
    const [pool, poolJson] = pools;
    const [admin, adminJson] = admins;

    // A watcher for the whole scenario.
    const stopWatch = new AbortController();
    const watching = (async () => {
      try {
        for await (const m of pool.watchKeys({}, { headers: auth(TOKENS.watch), signal: stopWatch.signal })) watched.push(m);
      } catch (err) {
        const e = ConnectError.from(err);
        if (e.code !== Code.Canceled) errors.push(e);
      }
    })();
    for (let i = 0; i < 200 && watched.length === 0; i++) await new Promise((r) => setTimeout(r, 10));
    expect(watched[0]?.event.case).toBe("snapshot");

    const list = async () => {
      for (const p of pools) {
        const res = await p.listKeys({}, { headers: auth(TOKENS.watch) });
        listed.push(toJsonString(ListKeysResponseSchema, res), Buffer.from(toBinary(ListKeysResponseSchema, res)).toString("latin1"));
      }
    };
    await list();

    // Operators add keys (one duplicate of an environment key), over gRPC and Connect JSON.
    const added = await admin.addKeys(
      { provider: Provider.OPENAI, keys: [{ key: ADDED[0] }, { key: ADDED[1], organizationId: "org-test" }, { key: ENV_OPENAI[0] }] },
      { headers: auth(TOKENS.admin) },
    );
    expect(added.duplicates).toBe(1);
    const [hashA, hashB] = added.keyHashes;
    const addedAnt = await adminJson.addKeys({ provider: Provider.ANTHROPIC, keys: [{ key: ADDED_ANTHROPIC }] }, { headers: auth(TOKENS.admin) });
    await list();

    // Proxies lease, report and use.
    for (const [client, model] of [[pool, "gpt-4o-mini"], [poolJson, "gpt-4o-mini"], [pool, "claude-3-5-sonnet-latest"], [poolJson, "gpt-4"]] as const) {
      const lease = await client.lease({ model }, { headers: auth(TOKENS.lease) });
      leasedKeys.push(lease.key);
      await client.reportRateLimit(
        { keyHash: lease.keyHash, statusCode: 429, leaseId: lease.leaseId, headers: { "retry-after": "1", "x-leaky-header": HEADER_SECRET } },
        { headers: auth(TOKENS.lease) },
      );
      await client.incrementUsage({ keyHash: lease.keyHash, model, inputTokens: 10n, outputTokens: 5n, leaseId: lease.leaseId }, { headers: auth(TOKENS.lease) });
    }
    await pool.getLockoutPeriod({ model: "gpt-4o-mini" }, { headers: auth(TOKENS.lease) });
    await pool.reportRateLimit({ keyHash: hashA, statusCode: 401, headers: { "www-authenticate": HEADER_SECRET } }, { headers: auth(TOKENS.lease) });

    // Operators disable, enable, remove.
    const disabled = await admin.disableKey({ keyHash: hashB, state: KeyState.OVER_QUOTA, reason: "quota" }, { headers: auth(TOKENS.admin) });
    expect(disabled.key?.state).toBe(KeyState.OVER_QUOTA);
    await adminJson.enableKey({ keyHash: hashB }, { headers: auth(TOKENS.admin) });
    await admin.removeKey({ keyHash: addedAnt.keyHashes[0] }, { headers: auth(TOKENS.admin) });
    await list();

    // Mistakes, each over both protocols.
    for (const [p, a] of [[pool, admin], [poolJson, adminJson]] as const) {
      await expectError(p.lease({ model: "gpt-4o-mini" }, { headers: auth(WRONG_TOKEN) }), Code.Unauthenticated);
      await expectError(p.lease({ model: "gpt-4o-mini" }, { headers: auth(ENV_OPENAI[1]) }), Code.Unauthenticated);
      await expectError(p.lease({ model: "gpt-4o-mini" }, { headers: { authorization: ENV_OPENAI[0] } }), Code.Unauthenticated);
      await expectError(a.addKeys({ provider: Provider.OPENAI, keys: [{ key: ADDED[0] }] }, { headers: auth(TOKENS.watch) }), Code.PermissionDenied);
      await expectError(a.addKeys({ provider: Provider.OPENAI, keys: [{ key: TOO_LONG }] }, { headers: auth(TOKENS.admin) }), Code.InvalidArgument);
      await expectError(a.addKeys({ provider: Provider.UNSPECIFIED, keys: [{ key: ADDED[0] }] }, { headers: auth(TOKENS.admin) }), Code.InvalidArgument);
      await expectError(a.addKeys({ provider: Provider.OPENAI, keys: [{ key: `${ADDED[0]} ` }, { key: "" }] }, { headers: auth(TOKENS.admin) }), Code.InvalidArgument);
      await expectError(p.reportRateLimit({ keyHash: "oai-ffffffffffffffff", statusCode: 200 }, { headers: auth(TOKENS.lease) }), Code.NotFound);
      await expectError(a.removeKey({ keyHash: ENV_OPENAI[0] }, { headers: auth(TOKENS.admin) }), Code.NotFound);
      await expectError(p.incrementUsage({ keyHash: ENV_OPENAI[0], model: "gpt-4o-mini" }, { headers: auth(TOKENS.lease) }), Code.NotFound);
    }

    await new Promise((r) => setTimeout(r, 100)); // let the last watch updates arrive
    stopWatch.abort();
    await watching;
    await server.stop();

    // Lease is the one way out: it did hand out real secrets.
    expect(leasedKeys.some((k) => [...ENV_OPENAI, ...ADDED].includes(k))).toBe(true);
    expect(leasedKeys.some((k) => k.startsWith("sk-ant-"))).toBe(true);

    // The logs were at trace level and do describe the calls.
    const { stdout, stderr } = server.output();
    expect(server.logs.some((l) => l.level === 20 && l.msg === "rpc")).toBe(true);
    expect(server.logs.some((l) => l.level === 20 && l.msg === "rpc failed" && l.code === "Unauthenticated")).toBe(true);

    const watchedText = watched.map((m) => toJsonString(WatchKeysResponseSchema, m) + Buffer.from(toBinary(WatchKeysResponseSchema, m)).toString("latin1"));
    expect(watched.length).toBeGreaterThan(5);
    const errorText = errors.map((e) => [e.message, e.rawMessage, JSON.stringify([...e.metadata.entries()]), JSON.stringify(e.details, (_k, v) => (v instanceof Uint8Array ? Buffer.from(v).toString("latin1") : typeof v === "bigint" ? String(v) : v))].join("\n"));
    expect(errors.length).toBeGreaterThanOrEqual(20);

    const places: [string, string][] = [
      ["stdout", stdout],
      ["stderr", stderr],
      ...listed.map((t, i) => [`ListKeys #${i}`, t] as [string, string]),
      ...watchedText.map((t, i) => [`WatchKeys message #${i}`, t] as [string, string]),
      ...errorText.map((t, i) => [`error #${i}`, t] as [string, string]),
    ];
    const leaks: string[] = [];
    for (const [where, text] of places) {
      for (const secret of SECRETS) if (text.includes(secret)) leaks.push(`${where} contains ${secret.slice(0, 24)}…`);
      if (text.includes(MARK)) leaks.push(`${where} contains "${MARK}": ${text.slice(Math.max(0, text.indexOf(MARK) - 60), text.indexOf(MARK) + 40)}`);
    }
    expect(leaks).toEqual([]);
  });
});
