/**
 * TLS for real: a certificate made here with openssl, the server started from KEYPOOL_TLS_CERT /
 * KEYPOOL_TLS_KEY, clients that trust it succeed over h2 (gRPC, on the main and the native gRPC
 * port, which share the certificate) and HTTP/1.1 (Connect), clients that do not are refused, and
 * ALPN offers h2 and http/1.1 on the main port.
 */
import * as tls from "node:tls";
import * as grpc from "@grpc/grpc-js";
import { ConnectError, createClient } from "@connectrpc/connect";
import { createConnectTransport, createGrpcTransport } from "@connectrpc/connect-node";
import { readSettings, tlsFiles } from "../../src/config/settings";
import { KeyPoolService } from "../../gen/ts/keypool/v1/keypool_pb";
import { loadGrpcJsPackage } from "../support/clients";
import { PORTS, portOf, urlOf, type PortName } from "../support/ports";
import { startAccessServer, type AccessServer } from "../support/access-server";
import { makeTestCertificate, type TestCertificate } from "../support/test-certificate";

const TOKEN = "tok-tls-lease-91c2";
const KEY = "sk-tls-test-key-000000001";
let cert: TestCertificate;
let stranger: TestCertificate;
let srv: AccessServer;

beforeAll(async () => {
  cert = makeTestCertificate();
  stranger = makeTestCertificate();
  const tls = tlsFiles(readSettings({ KEYPOOL_TLS_CERT: cert.certPath, KEYPOOL_TLS_KEY: cert.keyPath }).server);
  expect(tls).toBeDefined();
  srv = await startAccessServer({
    env: { KEYPOOL_TOKENS: `lease:${TOKEN}` },
    tls,
    pool: { reuseDelayMs: 0 },
    keys: [{ provider: "openai", key: KEY, modelFamilies: ["turbo"] }],
  });
  expect(srv.url).toBe(`https://127.0.0.1:${srv.port}`);
});
afterAll(async () => {
  await srv.close();
  cert.remove();
  stranger.remove();
});

function grpcLease(credentials: grpc.ChannelCredentials, port: PortName): Promise<{ key: string }> {
  const pkg = loadGrpcJsPackage();
  const client = new pkg.KeyPoolService(`localhost:${portOf(srv, port)}`, credentials);
  const md = new grpc.Metadata();
  md.set("authorization", `Bearer ${TOKEN}`);
  return new Promise<{ key: string }>((resolve, reject) => {
    (client as unknown as Record<string, Function>).Lease(
      { model: "gpt-4o-mini" },
      md,
      { deadline: Date.now() + 5000 },
      (err: Error | null, res: { key: string }) => (err ? reject(err) : resolve(res)),
    );
  }).finally(() => client.close());
}

describe.each(PORTS)("gRPC over TLS on the %s port", (port) => {
  it("serves gRPC over h2 to a grpc-js client that trusts the certificate", async () => {
    const res = await grpcLease(grpc.credentials.createSsl(Buffer.from(cert.cert)), port);
    expect(res.key).toBe(KEY);
  });

  it("serves gRPC over h2 through connect-node", async () => {
    expect(urlOf(srv, port)).toBe(`https://127.0.0.1:${portOf(srv, port)}`);
    const client = createClient(KeyPoolService, createGrpcTransport({ baseUrl: urlOf(srv, port), nodeOptions: { ca: cert.cert } }));
    const res = await client.lease({ model: "gpt-4o-mini" }, { headers: { authorization: `Bearer ${TOKEN}` } });
    expect(res.key).toBe(KEY);
  });

  it("refuses a gRPC client that does not trust the certificate", async () => {
    await expect(grpcLease(grpc.credentials.createSsl(Buffer.from(stranger.cert)), port)).rejects.toMatchObject({
      code: grpc.status.UNAVAILABLE,
    });
    await expect(grpcLease(grpc.credentials.createSsl(), port)).rejects.toMatchObject({ code: grpc.status.UNAVAILABLE });
  });

  it("does not speak cleartext on a TLS port", async () => {
    const client = createClient(KeyPoolService, createGrpcTransport({ baseUrl: `http://127.0.0.1:${portOf(srv, port)}` }));
    await expect(client.lease({ model: "gpt-4o-mini" }, { timeoutMs: 3000 })).rejects.toBeInstanceOf(ConnectError);
  });
});

describe("TLS on the main port", () => {
  it("serves Connect over HTTP/1.1 through connect-node", async () => {
    const client = createClient(
      KeyPoolService,
      createConnectTransport({ baseUrl: srv.url, httpVersion: "1.1", nodeOptions: { ca: cert.cert } }),
    );
    const res = await client.lease({ model: "gpt-4o-mini" }, { headers: { authorization: `Bearer ${TOKEN}` } });
    expect(res.key).toBe(KEY);
  });

  it("refuses a Connect client that does not trust the certificate", async () => {
    for (const ca of [stranger.cert, undefined]) {
      const client = createClient(
        KeyPoolService,
        createConnectTransport({ baseUrl: srv.url, httpVersion: "1.1", nodeOptions: ca ? { ca } : {} }),
      );
      const err = await client.lease({ model: "gpt-4o-mini" }, { headers: { authorization: `Bearer ${TOKEN}` } }).then(
        () => undefined,
        (e) => ConnectError.from(e),
      );
      // connect-node's HTTP/1.1 client labels a TLS failure INTERNAL (client side); what matters
      // is that the call failed on the certificate.
      expect(err).toBeDefined();
      expect(`${err?.message} ${String(err?.cause)}`).toMatch(/self.signed|certificate|verify/i);
    }
  });

  it.each([["h2"], ["http/1.1"]])("negotiates %s by ALPN", async (protocol) => {
    const negotiated = await new Promise<string | false>((resolve, reject) => {
      const socket = tls.connect({ host: "127.0.0.1", port: srv.port, ca: cert.cert, servername: "localhost", ALPNProtocols: [protocol] }, () => {
        resolve(socket.alpnProtocol ?? false);
        socket.destroy();
      });
      socket.on("error", reject);
    });
    expect(negotiated).toBe(protocol);
  });
});
