/**
 * The reference proxy: an OpenAI-compatible `POST /v1/chat/completions` and an Anthropic
 * `POST /v1/messages` that lease a key from keypool through the client helper (clients/ts),
 * forward the request upstream with it, and pass the answer back. Streamed answers (SSE) go to
 * the client chunk by chunk as they arrive, while the tokens are read from them on the way.
 *
 * Clients of the proxy send no upstream key: the proxy puts the leased one in. When every
 * attempt fails, the client gets the upstream's last answer (e.g. its 429); when keypool has no
 * key, a 429 (every key busy, with Retry-After) or a 503.
 */
import * as http from "node:http";
import { Code } from "@connectrpc/connect";
import { KeyPoolHelper, NoKeyError, type AttemptResult, type LeasedKey } from "../../clients/ts/src";
import { StreamUsageReader, usageOfBody, type Api } from "./usage-reader";

export interface ProxyOptions {
  helper: KeyPoolHelper;
  /** Upstream base URLs, without /v1: e.g. https://api.openai.com and https://api.anthropic.com. */
  openaiBaseUrl: string;
  anthropicBaseUrl: string;
  /** How long a request may wait in keypool for a ready key (ms). Default 10000. */
  maxWaitMs?: number;
  /** The whole request, retries included (ms). Default 120000. */
  timeoutMs?: number;
  /** Keys tried per request. Default 3. */
  attempts?: number;
  /** One line per request; it carries the key hash, never the key. Default: none. */
  log?: (line: Record<string, unknown>) => void;
}

/** Request bodies past this are refused with 413. */
const MAX_REQUEST_BYTES = 4 * 1024 * 1024;
/** Non-streamed upstream answers are read whole (to find their usage) up to this size. */
const MAX_ANSWER_BYTES = 32 * 1024 * 1024;

/** An answer read whole (`text`), or one already streamed to the client (`text` undefined). */
interface Answer {
  status: number;
  headers: Headers;
  text: string | undefined;
}

const ROUTES: Record<string, Api> = { "/v1/chat/completions": "openai", "/v1/messages": "anthropic" };

export function createProxy(options: ProxyOptions): http.Server {
  return http.createServer((req, res) => {
    void handle(options, req, res).catch(() => {
      if (!res.headersSent) sendJson(res, 502, { error: { type: "proxy_error", message: "the upstream call failed" } });
      else res.destroy();
    });
  });
}

async function handle(options: ProxyOptions, req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
  const started = performance.now();
  const api = ROUTES[(req.url ?? "").split("?")[0]];
  if (req.method !== "POST" || !api) return sendJson(res, 404, { error: { type: "not_found", message: "POST /v1/chat/completions or /v1/messages" } });
  const raw = await readBody(req);
  if (raw === undefined) return sendJson(res, 413, { error: { type: "invalid_request_error", message: `the body is over ${MAX_REQUEST_BYTES} bytes` } });
  let body: Record<string, unknown>;
  try {
    body = JSON.parse(raw) as Record<string, unknown>;
  } catch {
    return sendJson(res, 400, { error: { type: "invalid_request_error", message: "the body is not JSON" } });
  }
  if (typeof body.model !== "string" || !body.model) {
    return sendJson(res, 400, { error: { type: "invalid_request_error", message: "model is required" } });
  }
  // Ask OpenAI for the usage chunk at the end of a stream: keypool counts the tokens.
  if (api === "openai" && body.stream === true) {
    body.stream_options = { ...(body.stream_options as object | undefined), include_usage: true };
  }
  const upstreamBody = JSON.stringify(body);
  const clientGone = new AbortController();
  res.once("close", () => clientGone.abort());

  try {
    const result = await options.helper.withKey(
      {
        model: body.model,
        provider: api,
        maxWaitMs: options.maxWaitMs ?? 10_000,
        timeoutMs: options.timeoutMs ?? 120_000,
        attempts: options.attempts,
        signal: clientGone.signal,
      },
      async (key, { signal }): Promise<AttemptResult<Answer>> => {
        const upstream = await fetch(upstreamUrl(options, api), {
          method: "POST",
          headers: upstreamHeaders(api, key, req),
          body: upstreamBody,
          signal,
        });
        const streaming = upstream.ok && (upstream.headers.get("content-type") ?? "").startsWith("text/event-stream");
        if (!streaming) {
          // Whole answers (errors included) are read first: a retried one never reaches the client.
          const text = await readLimited(upstream);
          return { response: upstream, usage: upstream.ok ? usageOfBody(api, text) : undefined, value: { status: upstream.status, headers: upstream.headers, text } };
        }
        return { response: upstream, usage: pipeStream(api, upstream, res), value: { status: upstream.status, headers: upstream.headers, text: undefined } };
      },
    );
    const { value } = result;
    if (value.text !== undefined) {
      res.writeHead(value.status, passedHeaders(value.headers));
      res.end(value.text);
    }
    options.log?.({ msg: "proxied", api, model: body.model, status: value.status, keyHash: result.keyHash, attempts: result.attempts, ms: round(performance.now() - started), keypoolMs: round(result.keypoolMs) });
  } catch (error) {
    if (!(error instanceof NoKeyError)) throw error;
    options.log?.({ msg: "no key", api, model: body.model, code: Code[error.code], ms: round(performance.now() - started) });
    if (res.headersSent) return void res.destroy();
    if (error.code === Code.ResourceExhausted || error.code === Code.DeadlineExceeded) {
      const retryAfter = Math.max(1, Math.ceil((error.retryAfterMs ?? 1000) / 1000));
      res.setHeader("retry-after", String(retryAfter));
      return sendJson(res, 429, { error: { type: "rate_limit_error", message: "every upstream key is busy; retry later" } });
    }
    if (error.code === Code.InvalidArgument) return sendJson(res, 400, { error: { type: "invalid_request_error", message: error.message } });
    return sendJson(res, 503, { error: { type: "unavailable", message: "no upstream key can serve this model" } });
  }
}

function upstreamUrl(options: ProxyOptions, api: Api): string {
  return api === "openai" ? `${options.openaiBaseUrl}/v1/chat/completions` : `${options.anthropicBaseUrl}/v1/messages`;
}

function upstreamHeaders(api: Api, key: LeasedKey, req: http.IncomingMessage): Record<string, string> {
  const headers: Record<string, string> = { "content-type": "application/json" };
  if (api === "openai") {
    headers.authorization = `Bearer ${key.key}`;
    if (key.organizationId) headers["openai-organization"] = key.organizationId;
  } else {
    headers["x-api-key"] = key.key;
    headers["anthropic-version"] = String(req.headers["anthropic-version"] ?? "2023-06-01");
    const beta = req.headers["anthropic-beta"];
    if (typeof beta === "string") headers["anthropic-beta"] = beta;
  }
  return headers;
}

/** The upstream headers a client of the proxy may see (no hop-by-hop or length headers). */
function passedHeaders(headers: Headers): Record<string, string> {
  const out: Record<string, string> = {};
  headers.forEach((value, name) => {
    if (name === "content-type" || name === "retry-after" || name.startsWith("x-ratelimit-") || name.startsWith("anthropic-ratelimit-") || name === "request-id" || name === "x-request-id") {
      out[name] = value;
    }
  });
  return out;
}

/** Writes a streamed answer to the client as it arrives; resolves with the tokens it reported. */
async function pipeStream(api: Api, upstream: Response, res: http.ServerResponse) {
  const reader = new StreamUsageReader(api);
  res.writeHead(upstream.status, { ...passedHeaders(upstream.headers), "cache-control": "no-cache" });
  res.flushHeaders();
  for await (const chunk of upstream.body as unknown as AsyncIterable<Uint8Array>) {
    reader.push(chunk);
    if (!res.write(chunk)) {
      // A slow client: wait for it, or for it to go away (then the upstream call is aborted too).
      await new Promise((resolve) => {
        res.once("drain", resolve);
        res.once("close", resolve);
      });
      if (res.destroyed) throw new Error("the client went away during the stream");
    }
  }
  res.end();
  return reader.usage();
}

async function readLimited(response: Response): Promise<string> {
  const chunks: Uint8Array[] = [];
  let size = 0;
  const body = response.body as unknown as AsyncIterable<Uint8Array> | null;
  if (!body) return "";
  for await (const chunk of body) {
    size += chunk.length;
    if (size > MAX_ANSWER_BYTES) throw new Error("the upstream answer is too large");
    chunks.push(chunk);
  }
  return Buffer.concat(chunks).toString("utf8");
}

function readBody(req: http.IncomingMessage): Promise<string | undefined> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on("data", (chunk: Buffer) => {
      size += chunk.length;
      if (size <= MAX_REQUEST_BYTES) chunks.push(chunk);
    });
    req.on("end", () => resolve(size > MAX_REQUEST_BYTES ? undefined : Buffer.concat(chunks).toString("utf8")));
    req.on("error", reject);
  });
}

const round = (ms: number) => Math.round(ms * 1000) / 1000;

function sendJson(res: http.ServerResponse, status: number, body: unknown): void {
  res.writeHead(status, { "content-type": "application/json" });
  res.end(JSON.stringify(body));
}
