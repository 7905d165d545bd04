/**
 * A small stand-in for the OpenAI and Anthropic APIs, for tests, benchmarks and the README demo:
 * it speaks the endpoints the key checker calls, with a behaviour per key (behaviours.ts), counts
 * the requests and keys in flight, and listens on loopback only. Endpoints are a table
 * (`route`), so that more of the upstream APIs can be added beside these.
 *
 * Control endpoints: GET /fake/stats, POST /fake/stats/reset, POST /fake/behaviour
 * ({"key": "...", "behaviour": "working"}).
 */
import * as http from "node:http";
import type { AddressInfo, Socket } from "node:net";
import {
  BEHAVIOURS,
  behaviourFromName,
  isBehaviour,
  modelsFor,
  organizationsFor,
  requestLimitFor,
  type Behaviour,
} from "./behaviours";

export interface FakeUpstreamOptions {
  /** Default 127.0.0.1; the fake refuses any address outside 127.0.0.0/8 and ::1. */
  host?: string;
  /** Default 0: a free port. */
  port?: number;
  /** How long a "slow" key's answer takes. Default 120 s. */
  slowMs?: number;
  /** Every answer waits this long first (a demo shows checks one by one). Default 0. */
  latencyMs?: number;
}

/** One request as a route handler sees it. */
export interface FakeCall {
  method: string;
  path: string;
  provider: "openai" | "anthropic";
  /** The secret the request carried ("" when none). */
  key: string;
  /** What the fake does for this key; undefined for a key it does not know. */
  behaviour: Behaviour | undefined;
  /** OpenAI-Organization, when sent. */
  organization: string | undefined;
  /** The body parsed as JSON (undefined when absent or not JSON). */
  body: unknown;
}

export interface FakeAnswer {
  status: number;
  body?: unknown;
  headers?: Record<string, string>;
}

export type FakeRoute = (call: FakeCall) => FakeAnswer;

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

/** Bodies past this are refused with 413 (the checker's requests are tiny). */
const MAX_REQUEST_BYTES = 64 * 1024;

export class FakeUpstream {
  private readonly server: http.Server;
  private readonly routes = new Map<string, FakeRoute>();
  private readonly overrides = new Map<string, Behaviour>();
  private readonly sockets = new Set<Socket>();
  private readonly keysInFlight = new Map<string, number>();
  private readonly keysSeen = new Set<string>();
  private readonly slowTimers = new Set<NodeJS.Timeout>();
  private counters = { requests: 0, inFlight: 0, maxInFlight: 0, maxKeysInFlight: 0 };
  private readonly slowMs: number;
  private readonly latencyMs: number;
  private address: AddressInfo | undefined;

  private constructor(options: FakeUpstreamOptions) {
    this.slowMs = options.slowMs ?? 120_000;
    this.latencyMs = options.latencyMs ?? 0;
    this.server = http.createServer((req, res) => void this.handle(req, res));
    this.server.keepAliveTimeout = 5000;
    this.server.on("connection", (socket) => {
      this.sockets.add(socket);
      socket.once("close", () => this.sockets.delete(socket));
    });
    this.route("GET", "/v1/models", openAiModels);
    this.route("GET", "/v1/organizations", openAiOrganizations);
    this.route("POST", "/v1/chat/completions", openAiChat);
    this.route("POST", "/v1/messages", anthropicMessages);
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

  /** The base URL for KEYPOOL_OPENAI_BASE_URL and KEYPOOL_ANTHROPIC_BASE_URL alike. */
  get url(): string {
    const host = this.address!.family === "IPv6" ? `[${this.address!.address}]` : this.address!.address;
    return `http://${host}:${this.port}`;
  }

  /** Adds or replaces an endpoint. */
  route(method: string, path: string, handler: FakeRoute): void {
    this.routes.set(`${method} ${path}`, handler);
  }

  /** From now on, `key` behaves like this (whatever its name says). */
  setBehaviour(key: string, behaviour: Behaviour): void {
    this.overrides.set(key, behaviour);
  }

  behaviourOf(key: string): Behaviour | undefined {
    return this.overrides.get(key) ?? behaviourFromName(key);
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
    const path = (req.url ?? "/").split("?")[0];
    if (path.startsWith("/fake/")) return this.control(req, res, path);
    const key = keyOf(req);
    this.enter(key);
    res.once("close", () => this.leave(key));
    const body = await readBody(req);
    if (body === TOO_LARGE) return send(res, { status: 413, body: openAiError("request too large", "invalid_request_error") });
    const behaviour = this.behaviourOf(key);
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
    const handler = this.routes.get(`${req.method} ${path}`);
    if (!handler) return send(res, { status: 404, body: openAiError(`no route ${req.method} ${path}`, "invalid_request_error") });
    const call: FakeCall = {
      method: req.method ?? "GET",
      path,
      provider: req.headers["x-api-key"] !== undefined ? "anthropic" : "openai",
      key,
      behaviour: behaviour === "slow" ? "working" : behaviour,
      organization: header(req, "openai-organization"),
      body: body === undefined ? undefined : parseJson(body),
    };
    send(res, handler(call));
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

function send(res: http.ServerResponse, answer: FakeAnswer): void {
  if (res.destroyed) return;
  res.writeHead(answer.status, { "content-type": "application/json", ...answer.headers });
  res.end(answer.body === undefined ? "" : JSON.stringify(answer.body));
}

function keyOf(req: http.IncomingMessage): string {
  const apiKey = header(req, "x-api-key");
  if (apiKey !== undefined) return apiKey;
  const auth = header(req, "authorization") ?? "";
  return auth.startsWith("Bearer ") ? auth.slice(7) : "";
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
