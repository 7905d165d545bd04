/**
 * The proxy's round trip with keypool, written once: lease a key, run the caller's upstream call
 * with it, report the upstream's status and headers, record the tokens with the lease id (which
 * ends the lease), and on 429, 401 or 5xx do it again with another key, within a budget of
 * attempts and the caller's deadline. The behaviour it follows is docs/selection-and-leases.md,
 * docs/reports-and-lockout.md and docs/usage.md.
 */
import { durationFromMs, timestampDate } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError, createClient, type Client, type Interceptor, type Transport } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { KeyPoolService, Provider } from "../../../gen/ts/keypool/v1/keypool_pb";
import { NoKeyError } from "./errors";
import { headersRecord, responseMeta, type ResponseLike } from "./response-meta";
import type { TokenUsage } from "./usage";

export interface KeyPoolHelperOptions {
  /** keypool's address, e.g. `http://127.0.0.1:50051` (gRPC over HTTP/2). Or give `transport`. */
  baseUrl?: string;
  /** Any connect transport (gRPC, gRPC-Web, Connect, TLS), instead of `baseUrl`. */
  transport?: Transport;
  /** Sent as `authorization: Bearer <token>` when keypool requires tokens (the `lease` role). */
  token?: string;
  /** Attempts per call (each on a newly leased key) unless the call says otherwise. Default 3. */
  attempts?: number;
  /**
   * The time allowed for each ReportRateLimit and IncrementUsage (ms). These run even when the
   * caller's deadline has passed, so that no lease stays open until its expiry. Default 2000.
   */
  reportTimeoutMs?: number;
  /** One event per step, for logs and metrics. Events carry the key hash, never the secret. */
  onEvent?: (event: KeyPoolEvent) => void;
}

export type ProviderName = "openai" | "anthropic";

export interface KeyRequest {
  /** The upstream model, e.g. `gpt-4o-mini`; keypool resolves its family. */
  model: string;
  /** Optional: inferred from the model when absent. */
  provider?: ProviderName | Provider;
  /** How long each Lease may wait for a ready key (never past the deadline). Default 0. */
  maxWaitMs?: number;
  /** The whole call, every attempt included, ends within this many ms. */
  timeoutMs?: number;
  /** The same as an absolute time (ms since the epoch); the earlier of the two counts. */
  deadline?: number;
  /** Aborting it stops the call: the current attempt's signal aborts and no new attempt starts. */
  signal?: AbortSignal;
  /** Attempts for this call; default: the helper's. */
  attempts?: number;
}

/** The key the caller's function uses. `key` is the secret: send it upstream, never log it. */
export interface LeasedKey {
  key: string;
  keyHash: string;
  provider: ProviderName | "unspecified";
  modelFamily: string;
  organizationId: string;
  leaseId: string;
  leaseExpiresAt: Date | undefined;
}

export interface AttemptContext {
  /** 1 for the first key, 2 for the second... */
  attempt: number;
  /** Aborts at the deadline or when the caller's signal aborts: pass it to fetch or the SDK. */
  signal: AbortSignal;
}

/**
 * What the caller's function returns: the upstream's response (status and headers), the tokens
 * it spent (a promise when they are known only once a stream ends), and the value to hand back.
 */
export interface AttemptResult<T> {
  response: ResponseLike;
  usage?: TokenUsage | PromiseLike<TokenUsage | undefined>;
  value: T;
}

export interface KeyedResult<T> {
  value: T;
  /** The status of the attempt whose value this is. */
  status: number;
  keyHash: string;
  attempts: number;
  /** Time spent in keypool's calls (Lease, ReportRateLimit, IncrementUsage) over every attempt, in ms. */
  keypoolMs: number;
}

export type KeyPoolEvent =
  | { type: "lease"; attempt: number; keyHash: string; leaseId: string; modelFamily: string; ms: number }
  | { type: "report"; keyHash: string; status: number; ms: number }
  | { type: "usage"; keyHash: string; leaseId: string; inputTokens: number; outputTokens: number; ms: number }
  | { type: "retry"; keyHash: string; status: number; attempt: number }
  | { type: "error"; step: "lease" | "report" | "usage" | "call"; keyHash?: string; code?: string; message: string };

/** Statuses that say "another key may do better": rate limited, key rejected, upstream trouble. */
export function isRetryableStatus(status: number): boolean {
  return status === 429 || status === 401 || status >= 500;
}

const PROVIDERS: Record<ProviderName, Provider> = { openai: Provider.OPENAI, anthropic: Provider.ANTHROPIC };
const PROVIDER_NAMES: Partial<Record<Provider, ProviderName>> = { [Provider.OPENAI]: "openai", [Provider.ANTHROPIC]: "anthropic" };

type Outcome<T> = { kind: "result"; result: KeyedResult<T> } | { kind: "thrown"; error: unknown };

export class KeyPoolHelper {
  /** The generated client, for the RPCs the helper does not wrap (ListKeys, GetLockoutPeriod...). */
  readonly client: Client<typeof KeyPoolService>;
  private readonly attempts: number;
  private readonly reportTimeoutMs: number;
  private readonly onEvent: (event: KeyPoolEvent) => void;

  constructor(options: KeyPoolHelperOptions) {
    const interceptors: Interceptor[] = [];
    if (options.token) {
      const authorization = `Bearer ${options.token}`;
      interceptors.push((next) => (req) => {
        req.header.set("authorization", authorization);
        return next(req);
      });
    }
    let transport = options.transport;
    if (!transport) {
      if (!options.baseUrl) throw new Error("KeyPoolHelper needs a baseUrl or a transport");
      transport = createGrpcTransport({ baseUrl: options.baseUrl, interceptors });
    } else if (interceptors.length) {
      throw new Error("with a transport of your own, add the token as an interceptor of that transport");
    }
    this.client = createClient(KeyPoolService, transport);
    this.attempts = options.attempts ?? 3;
    this.reportTimeoutMs = options.reportTimeoutMs ?? 2000;
    this.onEvent = options.onEvent ?? (() => undefined);
    if (!Number.isInteger(this.attempts) || this.attempts < 1) throw new Error("attempts must be a whole number of at least 1");
  }

  /**
   * Runs `call` with a leased key and does the rest (see the file comment). Resolves with the
   * value of the first attempt whose status is not retryable, or of the last attempt when the
   * budget or the deadline runs out (so a proxy can pass the upstream's 429 on). A function that
   * throws an SDK error (one with `status` and `headers`) is treated like that response; any
   * other throw ends the lease and propagates. Rejects with NoKeyError when no key could be
   * leased for the first attempt.
   */
  async withKey<T>(request: KeyRequest, call: (key: LeasedKey, context: AttemptContext) => Promise<AttemptResult<T>>): Promise<KeyedResult<T>> {
    const deadline = Math.min(request.deadline ?? Infinity, request.timeoutMs === undefined ? Infinity : Date.now() + request.timeoutMs);
    const budget = request.attempts ?? this.attempts;
    const provider = typeof request.provider === "string" ? PROVIDERS[request.provider] : (request.provider ?? Provider.UNSPECIFIED);
    let last: Outcome<T> | undefined;
    const spent = { ms: 0 };

    for (let attempt = 1; attempt <= budget; attempt++) {
      const remaining = deadline - Date.now();
      if (request.signal?.aborted) return finish(last, NoKeyError.aborted(), spent);
      if (remaining <= 0) return finish(last, NoKeyError.deadline(), spent);

      let lease: LeasedKey;
      try {
        lease = await this.lease(request, provider, remaining, attempt, spent);
      } catch (error) {
        return finish(last, error instanceof NoKeyError ? error : NoKeyError.from(error), spent);
      }

      const outcome = await this.attempt(request, lease, attempt, deadline, call, spent);
      if (outcome.kind === "thrown" && outcome.status === undefined) throw outcome.error;
      last = outcome.kind === "thrown" ? { kind: "thrown", error: outcome.error } : { kind: "result", result: outcome.result };
      if (!isRetryableStatus(outcome.status!)) break;
      if (attempt < budget) this.onEvent({ type: "retry", keyHash: lease.keyHash, status: outcome.status!, attempt });
    }
    return finish(last, NoKeyError.deadline(), spent);
  }

  private async lease(request: KeyRequest, provider: Provider, remainingMs: number, attempt: number, spent: { ms: number }): Promise<LeasedKey> {
    const started = performance.now();
    const timeoutMs = Number.isFinite(remainingMs) ? Math.max(1, Math.ceil(remainingMs)) : undefined;
    const maxWaitMs = Math.min(request.maxWaitMs ?? 0, remainingMs - answerMargin(remainingMs));
    try {
      const answer = await this.client.lease(
        { model: request.model, provider, maxWait: maxWaitMs > 0 ? durationFromMs(Math.ceil(maxWaitMs)) : undefined },
        { timeoutMs, signal: request.signal },
      );
      const lease: LeasedKey = {
        key: answer.key,
        keyHash: answer.keyHash,
        provider: PROVIDER_NAMES[answer.provider] ?? "unspecified",
        modelFamily: answer.modelFamily,
        organizationId: answer.organizationId,
        leaseId: answer.leaseId,
        leaseExpiresAt: answer.leaseExpiresAt ? timestampDate(answer.leaseExpiresAt) : undefined,
      };
      const ms = performance.now() - started;
      spent.ms += ms;
      this.onEvent({ type: "lease", attempt, keyHash: lease.keyHash, leaseId: lease.leaseId, modelFamily: lease.modelFamily, ms });
      return lease;
    } catch (error) {
      spent.ms += performance.now() - started;
      const e = ConnectError.from(error);
      this.onEvent({ type: "error", step: "lease", code: Code[e.code], message: e.rawMessage });
      throw NoKeyError.from(e);
    }
  }

  /** One attempt on one key; the lease is ended whatever happens. */
  private async attempt<T>(
    request: KeyRequest,
    lease: LeasedKey,
    attempt: number,
    deadline: number,
    call: (key: LeasedKey, context: AttemptContext) => Promise<AttemptResult<T>>,
    spent: { ms: number },
  ): Promise<
    | { kind: "result"; status: number; result: KeyedResult<T> }
    | { kind: "thrown"; status: number | undefined; error: unknown }
  > {
    const signals = [request.signal, Number.isFinite(deadline) ? AbortSignal.timeout(Math.max(0, deadline - Date.now())) : undefined];
    const signal = AbortSignal.any(signals.filter((s): s is AbortSignal => s !== undefined));
    let usage: TokenUsage | undefined;
    try {
      let result: AttemptResult<T>;
      try {
        result = await call(lease, { attempt, signal });
      } catch (error) {
        // An SDK's APIError carries the upstream's status and headers: report them like a response.
        const meta = responseMeta(error);
        if (meta) await this.report(lease, meta, spent);
        else this.onEvent({ type: "error", step: "call", keyHash: lease.keyHash, message: "the upstream call threw" });
        return { kind: "thrown", status: meta?.status, error };
      }
      const meta = responseMeta(result.response);
      if (!meta) throw new TypeError("the function passed to withKey must return { response } with the upstream's status and headers");
      await this.report(lease, meta, spent);
      usage = await result.usage;
      // keypoolMs is filled in once the call is over (finish).
      return { kind: "result", status: meta.status, result: { value: result.value, status: meta.status, keyHash: lease.keyHash, attempts: attempt, keypoolMs: 0 } };
    } finally {
      await this.endLease(request.model, lease, usage, spent);
    }
  }

  private async report(lease: LeasedKey, response: ResponseLike, spent: { ms: number }): Promise<void> {
    const started = performance.now();
    try {
      await this.client.reportRateLimit(
        { keyHash: lease.keyHash, statusCode: response.status, headers: headersRecord(response.headers), leaseId: lease.leaseId },
        { timeoutMs: this.reportTimeoutMs },
      );
      const ms = performance.now() - started;
      spent.ms += ms;
      this.onEvent({ type: "report", keyHash: lease.keyHash, status: response.status, ms });
    } catch (error) {
      spent.ms += performance.now() - started;
      // The upstream answered; a failed report must not fail the caller's request.
      const e = ConnectError.from(error);
      this.onEvent({ type: "error", step: "report", keyHash: lease.keyHash, code: Code[e.code], message: e.rawMessage });
    }
  }

  /** IncrementUsage with the lease id: the one way to end a lease before its expiry. */
  private async endLease(model: string, lease: LeasedKey, usage: TokenUsage | undefined, spent: { ms: number }): Promise<void> {
    const started = performance.now();
    const inputTokens = usage?.inputTokens ?? 0;
    const outputTokens = usage?.outputTokens ?? 0;
    try {
      await this.client.incrementUsage(
        { keyHash: lease.keyHash, model, inputTokens: BigInt(inputTokens), outputTokens: BigInt(outputTokens), leaseId: lease.leaseId },
        { timeoutMs: this.reportTimeoutMs },
      );
      const ms = performance.now() - started;
      spent.ms += ms;
      this.onEvent({ type: "usage", keyHash: lease.keyHash, leaseId: lease.leaseId, inputTokens, outputTokens, ms });
    } catch (error) {
      spent.ms += performance.now() - started;
      const e = ConnectError.from(error);
      this.onEvent({ type: "error", step: "usage", keyHash: lease.keyHash, code: Code[e.code], message: e.rawMessage });
    }
  }
}

/**
 * keypool's wait for a key ends this much before the caller's deadline, so that its answer (a key,
 * or RESOURCE_EXHAUSTED) arrives before the call gives up: a key granted at the very deadline
 * would reach nobody and stay leased until its expiry.
 */
function answerMargin(remainingMs: number): number {
  return Number.isFinite(remainingMs) ? Math.min(250, remainingMs / 10) : 0;
}

function finish<T>(last: Outcome<T> | undefined, otherwise: NoKeyError, spent: { ms: number }): KeyedResult<T> {
  if (!last) throw otherwise;
  if (last.kind === "thrown") throw last.error;
  return { ...last.result, keypoolMs: spent.ms };
}
