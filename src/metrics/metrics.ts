/**
 * Every metric /metrics serves, in one prom-client registry. Label values come from closed sets
 * (providers, families of the family table, key states, outcomes, status classes, RPC methods
 * and codes) and never from what a client sends (key hashes, model names, tokens), so that the
 * number of series stays bounded whatever the traffic. The README's "Metrics" section lists
 * them with their meaning.
 */
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from "prom-client";
import type { KeyState, ProviderId } from "../domain/types";
import type { KeyCensus } from "./key-census";

/** How a Lease call ended. */
export type LeaseOutcome = "granted" | "waited" | "exhausted" | "refused" | "cancelled";

export type Direction = "input" | "output";

const KEY_STATES: readonly KeyState[] = ["active", "disabled", "revoked", "over_quota"];

/** Seconds: from an immediate answer to the longest waits a proxy asks for. */
const WAIT_BUCKETS = [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60];
/** Seconds: unary RPCs answer in well under a millisecond to a few (a commit, a wait). */
const RPC_BUCKETS = [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];
/** Seconds: a commit is one fsynced SQLite transaction. */
const COMMIT_BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5];

/** HTTP status → the class /metrics counts reports by; 429 is its own class, it drives cooldowns. */
export function statusClass(statusCode: number): string {
  if (statusCode === 429) return "429";
  if (statusCode >= 100 && statusCode < 600) return `${Math.floor(statusCode / 100)}xx`;
  return "other";
}

/** What a scrape reads from the running server at that moment. */
export interface MetricSources {
  census: KeyCensus;
  now(): number;
  /** Open WatchKeys streams. */
  watchers?(): number;
  /** Keys changed and not yet committed to the state file. */
  storeQueue?(): number;
}

export class KeypoolMetrics {
  readonly registry = new Registry();
  private readonly leases: Counter<"provider" | "family" | "outcome">;
  private readonly leaseWait: Histogram<"provider" | "family">;
  private readonly reports: Counter<"provider" | "status_class">;
  private readonly tokens: Counter<"provider" | "family" | "direction">;
  private readonly rpcDuration: Histogram<"method" | "code">;
  private readonly commitDuration: Histogram;
  private sources: MetricSources | undefined;
  /**
   * Lease is the hot path: prom-client hashes a label object on every inc(), so each label set's
   * child is looked up once and kept (label values are bounded, so these maps are too).
   */
  private readonly leaseChildren = new Map<string, { inc(): void }>();
  private readonly waitChildren = new Map<string, { observe(value: number): void }>();

  constructor(options: { processMetrics?: boolean } = {}) {
    const registers = [this.registry];
    if (options.processMetrics ?? true) collectDefaultMetrics({ register: this.registry });

    this.leases = new Counter({
      name: "keypool_leases_total",
      help: "Lease calls by outcome: granted (at once), waited (granted after waiting), exhausted (no key ready in time), refused (bad model, family not allowed, no active key), cancelled (client gone or deadline).",
      labelNames: ["provider", "family", "outcome"],
      registers,
    });
    this.leaseWait = new Histogram({
      name: "keypool_lease_wait_seconds",
      help: "Time a Lease call spent waiting for a ready key (0 when one was ready), granted or not.",
      labelNames: ["provider", "family"],
      buckets: WAIT_BUCKETS,
      registers,
    });
    this.reports = new Counter({
      name: "keypool_reports_total",
      help: "ReportRateLimit calls accepted, by upstream status class (2xx, 429, 4xx without 429, 5xx, other).",
      labelNames: ["provider", "status_class"],
      registers,
    });
    this.tokens = new Counter({
      name: "keypool_tokens_total",
      help: "Tokens reported by IncrementUsage, by model family and direction (input, output).",
      labelNames: ["provider", "family", "direction"],
      registers,
    });
    this.rpcDuration = new Histogram({
      name: "keypool_rpc_duration_seconds",
      help: "Unary keypool.v1 RPCs served by the services, by method and status code.",
      labelNames: ["method", "code"],
      buckets: RPC_BUCKETS,
      registers,
    });
    this.commitDuration = new Histogram({
      name: "keypool_store_commit_seconds",
      help: "Time from the start of a state-file commit (one transaction of every changed key) to its fsync.",
      buckets: COMMIT_BUCKETS,
      registers,
    });

    const self = this;
    new Gauge({
      name: "keypool_keys",
      help: "Keys in the pool, by provider and state.",
      labelNames: ["provider", "state"],
      registers,
      collect() {
        this.reset();
        if (!self.sources) return;
        const { byState } = self.sources.census.count(self.sources.now());
        for (const [provider, states] of byState) {
          for (const state of KEY_STATES) this.set({ provider, state }, states.get(state) ?? 0);
        }
      },
    });
    new Gauge({
      name: "keypool_keys_ready",
      help: "ACTIVE keys whose ready_at has passed (a Lease could get them now), by provider and family.",
      labelNames: ["provider", "family"],
      registers,
      collect() {
        this.reset();
        if (!self.sources) return;
        const { readyByFamily } = self.sources.census.count(self.sources.now());
        for (const [provider, families] of readyByFamily) {
          for (const [family, n] of families) this.set({ provider, family }, n);
        }
      },
    });
    new Gauge({
      name: "keypool_watchers",
      help: "Open WatchKeys streams.",
      registers,
      collect() {
        this.set(self.sources?.watchers?.() ?? 0);
      },
    });
    new Gauge({
      name: "keypool_store_queue_keys",
      help: "Keys changed but not yet committed to the state file (0 with KEYPOOL_STATE=memory).",
      registers,
      collect() {
        this.set(self.sources?.storeQueue?.() ?? 0);
      },
    });
  }

  /** Connects the gauges to the running server; until then they read 0. */
  observe(sources: MetricSources): void {
    this.sources = sources;
  }

  lease(provider: ProviderId | "unknown", family: string, outcome: LeaseOutcome): void {
    const name = `${provider}\n${family}\n${outcome}`;
    let child = this.leaseChildren.get(name);
    if (!child) this.leaseChildren.set(name, (child = this.leases.labels({ provider, family, outcome })));
    child.inc();
  }

  leaseWaited(provider: ProviderId | "unknown", family: string, seconds: number): void {
    const name = `${provider}\n${family}`;
    let child = this.waitChildren.get(name);
    if (!child) this.waitChildren.set(name, (child = this.leaseWait.labels({ provider, family })));
    child.observe(seconds);
  }

  report(provider: ProviderId, statusCode: number): void {
    this.reports.inc({ provider, status_class: statusClass(statusCode) });
  }

  tokensUsed(provider: ProviderId, family: string, input: number, output: number): void {
    if (input > 0) this.tokens.inc({ provider, family, direction: "input" }, input);
    if (output > 0) this.tokens.inc({ provider, family, direction: "output" }, output);
  }

  rpc(method: string, code: string, seconds: number): void {
    this.rpcDuration.observe({ method, code }, seconds);
  }

  committed(seconds: number): void {
    this.commitDuration.observe(seconds);
  }

  /** The Prometheus text exposition of every metric. */
  scrape(): Promise<string> {
    return this.registry.metrics();
  }

  get contentType(): string {
    return this.registry.contentType;
  }
}
