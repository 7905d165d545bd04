import { Writable } from "node:stream";
import { ConnectError, createClient, createRouterTransport } from "@connectrpc/connect";
import { createLogger } from "../../../src/log";
import { requestLogInterceptor } from "../../../src/transport/request-log";
import { invalidArgument } from "../../../src/domain/errors";
import { KeyPoolService } from "../../../gen/ts/keypool/v1/keypool_pb";

function setup(level: "info" | "debug") {
  const lines: Record<string, unknown>[] = [];
  const destination = new Writable({
    write(chunk, _enc, done) {
      lines.push(JSON.parse(String(chunk)));
      done();
    },
  });
  const logger = createLogger({ level, destination });
  const transport = createRouterTransport(
    (router) =>
      router.service(KeyPoolService, {
        lease: () => ({ key: "sk-secret-in-response", keyHash: "oai-0000000000000000" }),
        listKeys: () => {
          throw invalidArgument("model_families: too many");
        },
        // A client value a message repeats whole (connect's own decoding errors do).
        getLockoutPeriod: (req) => {
          throw invalidArgument(`model ${req.model} is unknown`);
        },
      }),
    { router: { interceptors: [requestLogInterceptor(logger)] } },
  );
  return { lines, client: createClient(KeyPoolService, transport) };
}

describe("request log", () => {
  it("logs procedure, code and duration at debug, never headers or messages", async () => {
    const { lines, client } = setup("debug");
    await client.lease({ model: "gpt-4o" }, { headers: { authorization: "Bearer tok-secret" } });
    await expect(client.listKeys({})).rejects.toBeInstanceOf(ConnectError);
    expect(lines).toHaveLength(2);
    expect(lines[0]).toMatchObject({ level: 20, msg: "rpc", procedure: "keypool.v1.KeyPoolService/Lease", code: "OK" });
    expect(typeof lines[0].ms).toBe("number");
    expect(lines[1]).toMatchObject({ msg: "rpc failed", code: "InvalidArgument", error: "model_families: too many" });
    const text = JSON.stringify(lines);
    expect(text).not.toContain("tok-secret");
    expect(text).not.toContain("sk-secret-in-response");
    expect(text).not.toContain("gpt-4o");
  });

  it("bounds every field: a 1 MB client value in an error becomes 2 KiB and a marker", async () => {
    const { lines, client } = setup("debug");
    await expect(client.getLockoutPeriod({ model: "m".repeat(1024 * 1024) })).rejects.toBeInstanceOf(ConnectError);
    const error = String(lines[0].error);
    expect(error).toMatch(/^model m{2000,2048}…\[truncated: 1048593 bytes in all\]$/);
    expect(JSON.stringify(lines[0]).length).toBeLessThan(2600);
  });

  it("writes nothing above debug", async () => {
    const { lines, client } = setup("info");
    await client.lease({ model: "gpt-4o" });
    expect(lines).toHaveLength(0);
  });
});
