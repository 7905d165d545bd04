/**
 * TLS when KEYPOOL_TLS_CERT and KEYPOOL_TLS_KEY are set: one port, h2 and http/1.1 chosen by ALPN.
 */
import { execFileSync } from "node:child_process";
import * as fs from "node:fs";
import * as https from "node:https";
import * as os from "node:os";
import * as path from "node:path";
import * as tls from "node:tls";
import { createClient } from "@connectrpc/connect";
import { KeyPoolService } from "../../gen/ts/keypool/v1/keypool_pb";
import { createTransport } from "../support/clients";
import { startTestServer, testKey, type TestServer } from "../support/test-server";

const hasOpenssl = (() => {
  try {
    execFileSync("openssl", ["version"], { stdio: "ignore" });
    return true;
  } catch {
    return false;
  }
})();

(hasOpenssl ? describe : describe.skip)("TLS", () => {
  let dir: string;
  let cert: Buffer;
  let t: TestServer;
  beforeAll(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), "keypool-tls-"));
    const certFile = path.join(dir, "cert.pem");
    const keyFile = path.join(dir, "key.pem");
    execFileSync(
      "openssl",
      ["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-days", "1",
       "-subj", "/CN=localhost", "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost",
       "-keyout", keyFile, "-out", certFile],
      { stdio: "ignore" },
    );
    cert = fs.readFileSync(certFile);
    t = await startTestServer({ tls: { certFile, keyFile }, keys: [{ provider: "openai", key: testKey("openai", 5) }] });
  });
  afterAll(async () => {
    await t?.close();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it("offers h2 and http/1.1 by ALPN", async () => {
    const negotiated = async (protocols: string[]) =>
      new Promise<string | false>((resolve, reject) => {
        const socket = tls.connect({ host: "127.0.0.1", port: t.port, ca: cert, ALPNProtocols: protocols }, () => {
          resolve(socket.alpnProtocol ?? false);
          socket.end();
        });
        socket.on("error", reject);
      });
    expect(await negotiated(["h2", "http/1.1"])).toBe("h2");
    expect(await negotiated(["http/1.1"])).toBe("http/1.1");
  });

  it("serves gRPC over h2", async () => {
    expect(t.url).toMatch(/^https:/);
    const client = createClient(KeyPoolService, createTransport(t.url, "grpc", "2", { ca: cert }));
    expect((await client.listKeys({})).keys).toHaveLength(1);
  });

  it("serves Connect JSON over HTTPS/1.1", async () => {
    const body = await new Promise<string>((resolve, reject) => {
      const req = https.request(
        { host: "127.0.0.1", port: t.port, method: "POST", path: "/keypool.v1.KeyPoolService/ListKeys", ca: cert, agent: false,
          headers: { "content-type": "application/json" } },
        (res) => {
          let text = "";
          res.setEncoding("utf8");
          res.on("data", (d: string) => (text += d));
          res.on("end", () => resolve(text));
        },
      );
      req.on("error", reject);
      req.end("{}");
    });
    expect((JSON.parse(body) as { keys: unknown[] }).keys).toHaveLength(1);
  });
});
