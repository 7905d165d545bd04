/**
 * `GET /healthz` on the main port, as HTTP load balancers and Kubernetes probes call it: over
 * HTTP/1.1 and HTTP/2, without a token even when tokens are configured, 200 while SERVING and 503
 * once shutdown begins.
 */
import * as http from "node:http";
import * as http2 from "node:http2";
import { startAccessServer, type AccessServer } from "../support/access-server";
import { startTestServer } from "../support/test-server";

interface Answer {
  status: number;
  body: string;
  contentType: string | undefined;
}

function getHttp1(port: number, path: string, method = "GET"): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: "127.0.0.1", port, path, method, agent: false }, (res) => {
      let body = "";
      res.setEncoding("utf8").on("data", (chunk: string) => (body += chunk));
      res.on("end", () => resolve({ status: res.statusCode!, body, contentType: res.headers["content-type"] }));
    });
    req.on("error", reject);
    req.end();
  });
}

function getHttp2(port: number, path: string): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const session = http2.connect(`http://127.0.0.1:${port}`);
    session.on("error", reject);
    const stream = session.request({ ":method": "GET", ":path": path });
    let status = 0;
    let contentType: string | undefined;
    let body = "";
    stream.on("response", (headers) => {
      status = Number(headers[":status"]);
      contentType = headers["content-type"] as string | undefined;
    });
    stream.setEncoding("utf8").on("data", (chunk: string) => (body += chunk));
    stream.on("end", () => {
      session.close();
      resolve({ status, body, contentType });
    });
    stream.on("error", reject);
  });
}

describe("GET /healthz with tokens configured", () => {
  let s: AccessServer;
  beforeAll(async () => {
    s = await startAccessServer({ env: { KEYPOOL_TOKENS: "lease:healthz-test-token-0001" } });
  });
  afterAll(() => s.close());

  it.each([
    ["HTTP/1.1", getHttp1],
    ["HTTP/2", getHttp2],
  ])("answers 200 SERVING over %s without a token", async (_, get) => {
    expect(await get(s.port, "/healthz")).toEqual({ status: 200, body: "SERVING\n", contentType: "text/plain; charset=utf-8" });
    expect((await get(s.port, "/healthz?probe=1")).status).toBe(200);
  });

  it("while the RPCs beside it still need the token", async () => {
    const rpc = await new Promise<number>((resolve, reject) => {
      const req = http.request(
        { host: "127.0.0.1", port: s.port, path: "/keypool.v1.KeyPoolService/ListKeys", method: "POST", headers: { "content-type": "application/json" }, agent: false },
        (res) => {
          res.resume();
          resolve(res.statusCode!);
        },
      );
      req.on("error", reject);
      req.end("{}");
    });
    expect(rpc).toBe(401);
  });

  it("answers HEAD without a body, refuses other methods with 405, and leaves other paths 404", async () => {
    expect(await getHttp1(s.port, "/healthz", "HEAD")).toMatchObject({ status: 200, body: "" });
    expect((await getHttp1(s.port, "/healthz", "POST")).status).toBe(405);
    expect((await getHttp1(s.port, "/healthzz")).status).toBe(404);
  });
});

it("answers 503 NOT_SERVING over HTTP/1.1 and HTTP/2 once shutdown begins", async () => {
  const t = await startTestServer({ deps: { shutdownNoticeMs: 1500 } });
  expect((await getHttp2(t.port, "/healthz")).status).toBe(200);
  const closed = t.close();
  expect(await getHttp1(t.port, "/healthz")).toMatchObject({ status: 503, body: "NOT_SERVING\n" });
  expect(await getHttp2(t.port, "/healthz")).toMatchObject({ status: 503, body: "NOT_SERVING\n" });
  await closed;
});
