/**
 * Serves the fake chat endpoints (chat.ts) over HTTP/1.1 on loopback: `POST /v1/chat/completions`
 * (the key in `Authorization: Bearer`) and `POST /v1/messages` (the key in `x-api-key`). Streamed
 * answers are written one SSE chunk per write, so a client sees them arrive one by one.
 */
import * as http from "node:http";
import type { AddressInfo, Socket } from "node:net";
import type { ChatAnswer, ChatCall, FakeChat } from "./chat";

/** Bodies past this are refused with 413. */
const MAX_REQUEST_BYTES = 1024 * 1024;

export interface FakeChatServer {
  url: string;
  port: number;
  close(): Promise<void>;
}

export async function startFakeChatServer(chat: FakeChat, options: { host?: string; port?: number } = {}): Promise<FakeChatServer> {
  const host = options.host ?? "127.0.0.1";
  if (!/^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(host) && host !== "::1") {
    throw new Error(`the fake upstream listens on loopback only, not ${host}`);
  }
  const routes: Record<string, (call: ChatCall) => Promise<ChatAnswer>> = {
    "POST /v1/chat/completions": chat.openAiChat,
    "POST /v1/messages": chat.anthropicMessages,
  };
  const sockets = new Set<Socket>();
  const server = http.createServer((req, res) => {
    const handler = routes[`${req.method} ${(req.url ?? "/").split("?")[0]}`];
    if (!handler) return send(res, { status: 404, headers: {}, body: { error: { message: "no such route" } } });
    void readBody(req).then(async (body) => {
      if (body === TOO_LARGE) return send(res, { status: 413, headers: {}, body: { error: { message: "request too large" } } });
      const call: ChatCall = { provider: req.headers["x-api-key"] !== undefined ? "anthropic" : "openai", key: keyOf(req), body: parseJson(body) };
      send(res, await handler(call));
    });
  });
  server.keepAliveTimeout = 5000;
  server.on("connection", (socket) => {
    sockets.add(socket);
    socket.once("close", () => sockets.delete(socket));
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(options.port ?? 0, host, () => resolve());
  });
  const address = server.address() as AddressInfo;
  const url = `http://${address.family === "IPv6" ? `[${address.address}]` : address.address}:${address.port}`;
  return {
    url,
    port: address.port,
    async close() {
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      for (const socket of sockets) socket.destroy();
      await closed;
    },
  };
}

/** Writes an answer; a stream goes out one chunk per write, and stops when the client leaves. */
export function send(res: http.ServerResponse, answer: ChatAnswer): void {
  if (res.destroyed) return;
  if (!answer.stream) {
    res.writeHead(answer.status, { "content-type": "application/json", ...answer.headers });
    res.end(answer.body === undefined ? "" : JSON.stringify(answer.body));
    return;
  }
  res.writeHead(answer.status, answer.headers);
  res.flushHeaders();
  void (async () => {
    for await (const chunk of answer.stream!) {
      if (res.destroyed) return;
      res.write(chunk);
    }
    res.end();
  })();
}

const TOO_LARGE = Symbol("too large");

function readBody(req: http.IncomingMessage): Promise<string | typeof TOO_LARGE> {
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on("data", (chunk: Buffer) => {
      size += chunk.length;
      if (size <= MAX_REQUEST_BYTES) chunks.push(chunk);
    });
    req.on("end", () => resolve(size > MAX_REQUEST_BYTES ? TOO_LARGE : Buffer.concat(chunks).toString("utf8")));
    req.on("error", () => resolve(""));
  });
}

function keyOf(req: http.IncomingMessage): string {
  const apiKey = req.headers["x-api-key"];
  if (typeof apiKey === "string") return apiKey;
  const auth = req.headers.authorization ?? "";
  return auth.startsWith("Bearer ") ? auth.slice(7) : "";
}

function parseJson(text: string): unknown {
  try {
    return JSON.parse(text) as unknown;
  } catch {
    return undefined;
  }
}
