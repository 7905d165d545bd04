/**
 * A small stand-in for the upstream APIs, for tests, benchmarks and the README demo: it speaks the
 * endpoints the key checker calls for every provider (OpenAI and Anthropic here; Google AI,
 * Mistral, Azure OpenAI, AWS Bedrock with SigV4 verification and GCP Vertex with its token
 * endpoint in provider-answers.ts), with a behaviour per key (behaviours.ts), counts the requests
 * and keys in flight, and listens on loopback only. Endpoints are a table (`route`, whose paths
 * may name `{segments}`), so that more of the upstream APIs can be added beside these.
 *
 * The chat endpoints (`POST /v1/chat/completions`, `POST /v1/messages`, streamed or not) serve two
 * kinds of key: a key with a check behaviour (its name, or `setBehaviour`) gets the checker's
 * answers below; a key with a chat plan (`chat.setPlan`), and, with `chatForUnknownKeys`, a key
 * the fake does not know, is a chat key and gets `chat`'s answers (chat.ts), counted per key. A
 * chat plan wins over a behaviour, so one key never gets answers of both kinds.
 *
 * Control endpoints: GET /fake/stats, POST /fake/stats/reset, POST /fake/behaviour
 * ({"key": "...", "behaviour": "working"}), GET /fake/vertex-private-key (the PEM key its Vertex
 * token endpoint verifies against).
 */
import * as http from "node:http";
import type { AddressInfo, Socket } from "node:net";
import type { UpstreamUrls } from "../checker/upstream-check";
import { FakeChat } from "./chat";
import {
  BEHAVIOURS,
  behaviourFromName,
  fakeAwsSecret,
  isBehaviour,
  modelsFor,
  organizationsFor,
  requestLimitFor,
  type Behaviour,
} from "./behaviours";
import {
  awsSignatureError,
  azureDeployment,
  bedrockModels,
  googleAiModels,
  mistralModels,
  oauthError,
  vertexModels,
} from "./provider-answers";
import type { FakeAnswer } from "./fake-answer";
import { verifySigV4 } from "./sigv4-verify";
import { VertexTokens } from "./vertex-tokens";

export interface FakeUpstreamOptions {
  /** Default 127.0.0.1; the fake refuses any address outside 127.0.0.0/8 and ::1. */
  host?: string;
  /** Default 0: a free port. */
  port?: number;
  /** How long a "slow" key's answer takes. Default 120 s. */
  slowMs?: number;
  /** Every answer waits this long first (a demo shows checks one by one). Default 0. */
  latencyMs?: number;
  /** The chat keys' plans and counts; default: a FakeChat whose every request succeeds. */
  chat?: FakeChat;
  /**
   * Whether a key the fake does not know is a chat key (answered by `chat`) rather than a key a
   * real upstream rejects (401). Default false: the checker's tests rely on the 401.
   */
  chatForUnknownKeys?: boolean;
}

/** One request as a route handler sees it. */
export interface FakeCall {
  method: string;
  path: string;
  /** Which chat API the request speaks (by its headers). */
  provider: "openai" | "anthropic";
  /**
   * The secret the request carried ("" when none); for Bedrock the access key id, for the Vertex
   * token endpoint the client email the assertion claims.
   */
  key: string;
  /** What the fake does for this key; undefined for a key it does not know. */
  behaviour: Behaviour | undefined;
  /** OpenAI-Organization, when sent. */
  organization: string | undefined;
  /** The body parsed as JSON (undefined when absent or not JSON). */
  body: unknown;
  /** The body as sent (undefined when absent). */
  rawBody: string | undefined;
  /** Lower-case names. */
  headers: http.IncomingHttpHeaders;
  query: URLSearchParams;
  /** The `{segments}` of the route's path. */
  params: Record<string, string>;
}

export type { FakeAnswer } from "./fake-answer";

export type FakeRoute = (call: FakeCall) => FakeAnswer | Promise<FakeAnswer>;

export interface FakeUpstreamStats {
  /** Requests answered or closed, over the fake's life (or since reset). */
  requests: number;
  /** Requests in flight now, and the most ever at once. */
  inFlight: number;
  maxInFlight: number;
  /** Distinct keys with a request in flight now, and the most ever at once. */
  keysInFlight: number;
  maxKeysInFlight: number;
  /** Distinct keys that made at least one request. */
  keysSeen: number;
}

const CHAT_PATHS = new Set(["/v1/chat/completions", "/v1/messages"]);

/** Bodies past this are refused with 413 (room for a long chat conversation). */
const MAX_REQUEST_BYTES = 1024 * 1024;

export class FakeUpstream {
  private readonly server: http.Server;
  private readonly routes = new Map<string, FakeRoute>();
  /** Routes whose path names `{segments}`, tried in order after the exact ones. */
  private readonly templateRoutes: { method: string; pattern: RegExp; handler: FakeRoute }[] = [];
  /** Access tokens issued to Vertex service accounts, and the key pair they sign with. */
  readonly vertexTokens = new VertexTokens();
  private readonly awsSecrets = new Map<string, string>();
  private readonly overrides = new Map<string, Behaviour>();
  private readonly sockets = new Set<Socket>();
  private readonly keysInFlight = new Map<string, number>();
  private readonly keysSeen = new Set<string>();
  private readonly slowTimers = new Set<NodeJS.Timeout>();
  private counters = { requests: 0, inFlight: 0, maxInFlight: 0, maxKeysInFlight: 0 };
  private readonly slowMs: number;
  private readonly latencyMs: number;
  private address: AddressInfo | undefined;
  /** The chat keys' plans and per-key counts. */
  readonly chat: FakeChat;
  private readonly chatForUnknownKeys: boolean;

  private constructor(options: FakeUpstreamOptions) {
    this.slowMs = options.slowMs ?? 120_000;
    this.latencyMs = options.latencyMs ?? 0;
    this.chat = options.chat ?? new FakeChat();
    this.chatForUnknownKeys = options.chatForUnknownKeys ?? false;
    this.server = http.createServer((req, res) => void this.handle(req, res));
    this.server.keepAliveTimeout = 5000;
    this.server.on("connection", (socket) => {
      this.sockets.add(socket);
      socket.once("close", () => this.sockets.delete(socket));
    });
    // Mistral's models endpoint has OpenAI's path: the key's name tells them apart.
    this.route("GET", "/v1/models", (call) => (call.key.startsWith("mistral-") ? mistralModels(call.behaviour) : openAiModels(call)));
    this.route("GET", "/v1/organizations", openAiOrganizations);
    this.route("POST", "/v1/chat/completions", (call) => (this.isChatKey(call.key) ? this.chat.openAiChat(call) : openAiChat(call)));
    this.route("POST", "/v1/messages", (call) => (this.isChatKey(call.key) ? this.chat.anthropicMessages(call) : anthropicMessages(call)));
    this.route("GET", "/v1beta/models", (call) => googleAiModels(call.behaviour));
    this.route("GET", "/openai/deployments/{deployment}", (call) => azureDeployment(call.behaviour, call.params.deployment, call.query.get("api-version")));
    this.route("GET", "/foundation-models", (call) => this.bedrock(call));
    this.route("POST", "/token", (call) => this.vertexToken(call));
    this.route("GET", "/v1beta1/publishers/{publisher}/models", (call) =>
      vertexModels(call.behaviour, call.params.publisher, firstOf(call.headers["x-goog-user-project"])),
    );
  }

  static async start(options: FakeUpstreamOptions = {}): Promise<FakeUpstream> {
    const host = options.host ?? "127.0.0.1";
    if (!isLoopback(host)) throw new Error(`the fake upstream listens on loopback only, not ${host}`);
    const fake = new FakeUpstream(options);
    await new Promise<void>((resolve, reject) => {
      fake.server.once("error", reject);
      fake.server.listen(options.port ?? 0, host, () => resolve());
    });
    fake.address = fake.server.address() as AddressInfo;
    return fake;
  }

  get port(): number {
    return this.address!.port;
  }

  /** The base URL for every KEYPOOL_*_BASE_URL alike. */
  get url(): string {
    const host = this.address!.family === "IPv6" ? `[${this.address!.address}]` : this.address!.address;
    return `http://${host}:${this.port}`;
  }

  /** Every upstream URL of the checker pointed at this fake. */
  checkerUrls(): UpstreamUrls {
    const url = this.url;
    return {
      openaiBaseUrl: url,
      anthropicBaseUrl: url,
      googleAiBaseUrl: url,
      mistralBaseUrl: url,
      azureBaseUrl: url,
      bedrockBaseUrl: url,
      vertexBaseUrl: url,
      vertexTokenUrl: `${url}/token`,
    };
  }

  /** Adds or replaces an endpoint; `{name}` in the path matches one segment, found in `call.params`. */
  route(method: string, path: string, handler: FakeRoute): void {
    if (!path.includes("{")) {
      this.routes.set(`${method} ${path}`, handler);
      return;
    }
    const pattern = new RegExp(`^${path.replace(/[.*+?^$()|[\]\\]/g, "\\$&").replace(/\{(\w+)\}/g, "(?<$1>[^/]+)")}$`);
    const existing = this.templateRoutes.findIndex((r) => r.method === method && r.pattern.source === pattern.source);
    if (existing >= 0) this.templateRoutes.splice(existing, 1);
    this.templateRoutes.push({ method, pattern, handler });
  }

  /** The secret access key a Bedrock access key id signs with (default: fakeAwsSecret of the id). */
  setAwsSecret(accessKeyId: string, secretAccessKey: string): void {
    this.awsSecrets.set(accessKeyId, secretAccessKey);
  }

  /** From now on, `key` behaves like this (whatever its name says). */
  setBehaviour(key: string, behaviour: Behaviour): void {
    this.overrides.set(key, behaviour);
  }

  behaviourOf(key: string): Behaviour | undefined {
    return this.overrides.get(key) ?? this.vertexTokens.behaviourOf(key) ?? behaviourFromName(key);
  }

  /** Whether the chat endpoints answer `key` with its chat plan rather than its check behaviour. */
  isChatKey(key: string): boolean {
    return this.chat.hasPlan(key) || (this.chatForUnknownKeys && this.behaviourOf(key) === undefined);
  }

  stats(): FakeUpstreamStats {
    return {
      requests: this.counters.requests,
      inFlight: this.counters.inFlight,
      maxInFlight: this.counters.maxInFlight,
      keysInFlight: this.keysInFlight.size,
      maxKeysInFlight: this.counters.maxKeysInFlight,
      keysSeen: this.keysSeen.size,
    };
  }

  resetStats(): void {
    this.counters = { requests: 0, inFlight: this.counters.inFlight, maxInFlight: 0, maxKeysInFlight: 0 };
    this.keysSeen.clear();
  }

  /** Stops at once: slow answers are dropped, open connections closed. */
  async close(): Promise<void> {
    for (const timer of this.slowTimers) clearTimeout(timer);
    this.slowTimers.clear();
    const closed = new Promise<void>((resolve) => this.server.close(() => resolve()));
    for (const socket of this.sockets) socket.destroy();
    await closed;
  }

  private async handle(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const [path, search] = splitUrl(req.url ?? "/");
    if (path.startsWith("/fake/")) return this.control(req, res, path);
    const query = new URLSearchParams(search);
    // The Vertex token endpoint's key is in the body: it is read before the request is counted.
    const early = path === "/token" ? await readBody(req) : undefined;
    const key = keyOf(req, query, typeof early === "string" ? early : undefined);
    this.enter(key);
    res.once("close", () => this.leave(key));
    const body = path === "/token" ? early : await readBody(req);
    if (body === TOO_LARGE) return send(res, { status: 413, body: openAiError("request too large", "invalid_request_error") });
    // On the chat endpoints a chat key's plan decides alone: no refused connection, no slow answer.
    const behaviour = CHAT_PATHS.has(path) && this.isChatKey(key) ? undefined : this.behaviourOf(key);
    if (behaviour === "refused") {
      req.socket.destroy();
      return;
    }
    const delayMs = (behaviour === "slow" ? this.slowMs : 0) + this.latencyMs;
    if (delayMs > 0) {
      await new Promise<void>((resolve) => {
        const timer = setTimeout(() => {
          this.slowTimers.delete(timer);
          resolve();
        }, delayMs);
        this.slowTimers.add(timer);
        res.once("close", () => {
          clearTimeout(timer);
          this.slowTimers.delete(timer);
          resolve();
        });
      });
      if (res.destroyed) return;
    }
    const found = this.findRoute(req.method ?? "GET", path);
    if (!found) return send(res, { status: 404, body: openAiError(`no route ${req.method} ${path}`, "invalid_request_error") });
    const call: FakeCall = {
      method: req.method ?? "GET",
      path,
      provider: req.headers["x-api-key"] !== undefined ? "anthropic" : "openai",
      key,
      behaviour: behaviour === "slow" ? "working" : behaviour,
      organization: header(req, "openai-organization"),
      body: body === undefined ? undefined : parseJson(body),
      rawBody: body,
      headers: req.headers,
      query,
      params: found.params,
    };
    send(res, await found.handler(call));
  }

  private findRoute(method: string, path: string): { handler: FakeRoute; params: Record<string, string> } | undefined {
    const exact = this.routes.get(`${method} ${path}`);
    if (exact) return { handler: exact, params: {} };
    for (const route of this.templateRoutes) {
      const match = route.method === method ? route.pattern.exec(path) : null;
      if (match) return { handler: route.handler, params: Object.fromEntries(Object.entries(match.groups ?? {}).map(([k, v]) => [k, decodeURIComponent(v)])) };
    }
    return undefined;
  }

  /** Bedrock: the signature first, as AWS checks it, then the key's behaviour. */
  private async bedrock(call: FakeCall): Promise<FakeAnswer> {
    const verified = await verifySigV4(
      { method: call.method, headers: call.headers, path: call.path, query: call.query },
      "bedrock",
      (id) => this.awsSecrets.get(id) ?? (this.behaviourOf(id) === undefined ? undefined : fakeAwsSecret(id)),
      Date.now(),
    );
    if (!verified.ok) return awsSignatureError(verified.errorType, verified.message);
    return bedrockModels(call.behaviour);
  }

  /** Vertex: the assertion's signature, audience and scope first, then the account's behaviour. */
  private async vertexToken(call: FakeCall): Promise<FakeAnswer> {
    const form = new URLSearchParams(call.rawBody ?? "");
    const audience = `http://${firstOf(call.headers.host) ?? ""}${call.path}`;
    if (call.behaviour === undefined || call.behaviour === "revoked") {
      return oauthError(400, "invalid_grant", "Invalid grant: account not found");
    }
    const result = await this.vertexTokens.exchange(form, audience, call.behaviour);
    if (!result.ok) return oauthError(result.status, result.error, result.description);
    return { status: 200, body: { access_token: result.accessToken, expires_in: result.expiresIn, token_type: "Bearer" } };
  }

  private enter(key: string): void {
    this.counters.inFlight++;
    this.counters.maxInFlight = Math.max(this.counters.maxInFlight, this.counters.inFlight);
    this.keysInFlight.set(key, (this.keysInFlight.get(key) ?? 0) + 1);
    this.counters.maxKeysInFlight = Math.max(this.counters.maxKeysInFlight, this.keysInFlight.size);
    this.keysSeen.add(key);
  }

  private leave(key: string): void {
    this.counters.inFlight--;
    this.counters.requests++;
    const open = (this.keysInFlight.get(key) ?? 1) - 1;
    if (open === 0) this.keysInFlight.delete(key);
    else this.keysInFlight.set(key, open);
  }

  private async control(req: http.IncomingMessage, res: http.ServerResponse, path: string): Promise<void> {
    if (req.method === "GET" && path === "/fake/stats") return send(res, { status: 200, body: this.stats() });
    if (req.method === "POST" && path === "/fake/stats/reset") {
      this.resetStats();
      return send(res, { status: 200, body: this.stats() });
    }
    if (req.method === "GET" && path === "/fake/vertex-private-key") {
      // The fake's own throwaway key, for Vertex credentials its token endpoint accepts.
      res.writeHead(200, { "content-type": "application/x-pem-file" });
      res.end(`${this.vertexTokens.privateKeyPem}\n`);
      return;
    }
    if (req.method === "POST" && path === "/fake/behaviour") {
      const body = await readBody(req);
      const parsed = typeof body === "string" ? (parseJson(body) as { key?: unknown; behaviour?: unknown } | undefined) : undefined;
      if (typeof parsed?.key !== "string" || typeof parsed.behaviour !== "string" || !isBehaviour(parsed.behaviour)) {
        return send(res, { status: 400, body: { error: `send {"key": "...", "behaviour": one of ${BEHAVIOURS.join(", ")}}` } });
      }
      this.setBehaviour(parsed.key, parsed.behaviour);
      return send(res, { status: 200, body: { ok: true } });
    }
    send(res, { status: 404, body: { error: "unknown control endpoint" } });
  }
}

// ------------------------------------------------------------------ OpenAI

const openAiError = (message: string, type: string, code: string | null = null) => ({
  error: { message, type, param: null, code },
});

/** What every OpenAI endpoint answers for keys that are not (fully) working. */
function openAiRefusal(call: FakeCall): FakeAnswer | undefined {
  switch (call.behaviour) {
    case undefined:
    case "revoked":
      // A real 401 quotes part of the key; the checker must never pass that on.
      return { status: 401, body: openAiError(`Incorrect API key provided: ${mask(call.key)}.`, "invalid_request_error", "invalid_api_key") };
    case "5xx":
      return { status: 503, body: openAiError("The server is overloaded or not ready yet.", "server_error") };
    case "terminated":
      return { status: 429, body: openAiError("Your access was terminated.", "access_terminated", "access_terminated") };
    default:
      return undefined;
  }
}

const openAiModels: FakeRoute = (call) =>
  openAiRefusal(call) ?? {
    status: 200,
    body: {
      object: "list",
      data: modelsFor(call.behaviour!, call.organization).map((id) => ({ id, object: "model", created: 1700000000, owned_by: "system" })),
    },
  };

const openAiOrganizations: FakeRoute = (call) =>
  openAiRefusal(call) ?? { status: 200, body: { object: "list", data: organizationsFor(call.behaviour!) } };

const openAiChat: FakeRoute = (call) => {
  const refusal = openAiRefusal(call);
  if (refusal) return refusal;
  const behaviour = call.behaviour!;
  const limit = requestLimitFor(behaviour);
  const headers = {
    "x-ratelimit-limit-requests": String(limit),
    "x-ratelimit-remaining-requests": String(limit - 1),
    "x-ratelimit-reset-requests": "6m0s",
  };
  if (behaviour === "over-quota") {
    return {
      status: 429,
      headers,
      body: openAiError("You exceeded your current quota, please check your plan and billing details.", "insufficient_quota", "insufficient_quota"),
    };
  }
  if (behaviour === "rate-limited") {
    return { status: 429, headers, body: openAiError("Rate limit reached for requests.", "requests", "rate_limit_exceeded") };
  }
  return {
    status: 400,
    headers,
    body: openAiError("Invalid 'max_tokens': integer below minimum value.", "invalid_request_error", "integer_below_min_value"),
  };
};

// ------------------------------------------------------------------ Anthropic

const anthropicError = (type: string, message: string) => ({ type: "error", error: { type, message } });

const anthropicMessages: FakeRoute = (call) => {
  switch (call.behaviour) {
    case undefined:
    case "revoked":
      return { status: 401, body: anthropicError("authentication_error", "invalid x-api-key") };
    case "5xx":
      return { status: 529, body: anthropicError("overloaded_error", "Overloaded") };
    case "over-quota":
      return {
        status: 400,
        body: anthropicError("invalid_request_error", "Your credit balance is too low to access the Anthropic API."),
      };
    case "terminated":
      return { status: 400, body: anthropicError("invalid_request_error", "This organization has been disabled.") };
    case "rate-limited":
      return { status: 429, body: anthropicError("rate_limit_error", "Number of requests has exceeded your rate limit.") };
    default:
      return {
        status: 200,
        body: {
          id: "msg_fake",
          type: "message",
          role: "assistant",
          model: "claude-3-haiku-20240307",
          content: [{ type: "text", text: "h" }],
          stop_reason: "max_tokens",
          usage: { input_tokens: 8, output_tokens: 1 },
        },
      };
  }
};

// ------------------------------------------------------------------ plumbing

const TOO_LARGE = Symbol("too large");

function readBody(req: http.IncomingMessage): Promise<string | undefined | typeof TOO_LARGE> {
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on("data", (chunk: Buffer) => {
      size += chunk.length;
      if (size <= MAX_REQUEST_BYTES) chunks.push(chunk);
    });
    req.on("end", () => resolve(size > MAX_REQUEST_BYTES ? TOO_LARGE : size === 0 ? undefined : Buffer.concat(chunks).toString("utf8")));
    req.on("error", () => resolve(undefined));
  });
}

/** Writes an answer; a stream goes out one chunk per write, and stops when the client leaves. */
function send(res: http.ServerResponse, answer: FakeAnswer): void {
  if (res.destroyed) return;
  const stream = answer.stream;
  if (!stream) {
    res.writeHead(answer.status, { "content-type": "application/json", ...answer.headers });
    res.end(answer.body === undefined ? "" : JSON.stringify(answer.body));
    return;
  }
  res.writeHead(answer.status, answer.headers);
  res.flushHeaders();
  void (async () => {
    for await (const chunk of stream) {
      if (res.destroyed) return;
      res.write(chunk);
    }
    res.end();
  })();
}

function keyOf(req: http.IncomingMessage, query: URLSearchParams, body: string | undefined): string {
  for (const name of ["x-api-key", "api-key", "x-goog-api-key"]) {
    const value = header(req, name);
    if (value !== undefined) return value;
  }
  const auth = header(req, "authorization") ?? "";
  if (auth.startsWith("Bearer ")) return auth.slice(7);
  const aws = /^AWS4-HMAC-SHA256 Credential=([^/,\s]+)\//.exec(auth);
  if (aws) return aws[1];
  if (body !== undefined) return VertexTokens.issuerOf(new URLSearchParams(body).get("assertion") ?? "");
  return query.get("key") ?? "";
}

function splitUrl(url: string): [string, string] {
  const q = url.indexOf("?");
  return q < 0 ? [url, ""] : [url.slice(0, q), url.slice(q + 1)];
}

function firstOf(value: string | string[] | undefined): string | undefined {
  return Array.isArray(value) ? value[0] : value;
}

function header(req: http.IncomingMessage, name: string): string | undefined {
  const value = req.headers[name];
  return Array.isArray(value) ? value[0] : value;
}

function parseJson(text: string): unknown {
  try {
    return JSON.parse(text) as unknown;
  } catch {
    return undefined;
  }
}

function mask(key: string): string {
  return key.length > 8 ? `${key.slice(0, 3)}***${key.slice(-4)}` : "***";
}

export function isLoopback(host: string): boolean {
  return /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(host) || host === "::1" || host === "localhost";
}
