/**
 * Every metric /metrics serves, in one prom-client registry. Label values come from closed sets
 * (providers, families of the family table, key states, outcomes, status classes, RPC methods
 * and codes) and never from what a client sends (key hashes, model names, tokens), so that the
 * number of series stays bounded whatever the traffic. The README's "Metrics" section lists
 * them with their meaning.
 */
import { Gauge, Registry, collectDefaultMetrics } from "prom-client";
import type { KeyState, ProviderId } from "../domain/types";
import { HotCounter, HotHistogram } from "./hot-series";
import type { KeyCensus } from "./key-census";

/** How a Lease call ended. */
export type LeaseOutcome = "granted" | "waited" | "exhausted" | "refused" | "cancelled";

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
  private readonly leases: HotCounter;
  private readonly leaseWait: HotHistogram;
  private readonly reports: HotCounter;
  private readonly tokens: HotCounter;
  private readonly rpcDuration: HotHistogram;
  private readonly commitDuration: HotHistogram;
  private sources: MetricSources | undefined;

  constructor(options: { processMetrics?: boolean } = {}) {
    const registry = this.registry;
    const registers = [registry];
    if (options.processMetrics ?? true) collectDefaultMetrics({ register: registry });

    this.leases = new HotCounter(
      "keypool_leases_total",
      "Lease calls by outcome: granted (at once), waited (granted after waiting), exhausted (no key ready in time), refused (bad model, family not allowed, no active key), cancelled (client gone or deadline).",
      registry,
    );
    this.leaseWait = new HotHistogram(
      "keypool_lease_wait_seconds",
      "Time a Lease call spent waiting for a ready key (0 when one was ready), granted or not.",
      WAIT_BUCKETS,
      registry,
    );
    this.reports = new HotCounter(
      "keypool_reports_total",
      "ReportRateLimit calls accepted, by upstream status class (2xx, 429, 4xx without 429, 5xx, other).",
      registry,
    );
    this.tokens = new HotCounter("keypool_tokens_total", "Tokens reported by IncrementUsage, by model family and direction (input, output).", registry);
    this.rpcDuration = new HotHistogram(
      "keypool_rpc_duration_seconds",
      "Unary keypool.v1 RPCs served by the services, by method and status code.",
      RPC_BUCKETS,
      registry,
    );
    this.commitDuration = new HotHistogram(
      "keypool_store_commit_seconds",
      "Time from the start of a state-file commit (one transaction of every changed key) to its fsync.",
      COMMIT_BUCKETS,
      registry,
    );

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
    if (!this.leases.add(provider, family, outcome)) this.leases.create(provider, family, outcome, { provider, family, outcome });
  }

  leaseWaited(provider: ProviderId | "unknown", family: string, seconds: number): void {
    if (!this.leaseWait.observe(provider, family, "", seconds)) this.leaseWait.create(provider, family, "", { provider, family }, seconds);
  }

  report(provider: ProviderId, statusCode: number): void {
    const status_class = statusClass(statusCode);
    if (!this.reports.add(provider, status_class, "")) this.reports.create(provider, status_class, "", { provider, status_class });
  }

  tokensUsed(provider: ProviderId, family: string, input: number, output: number): void {
    if (input > 0) {
      if (!this.tokens.add(provider, family, "input", input)) this.tokens.create(provider, family, "input", { provider, family, direction: "input" }, input);
    }
    if (output > 0) {
      if (!this.tokens.add(provider, family, "output", output)) this.tokens.create(provider, family, "output", { provider, family, direction: "output" }, output);
    }
  }

  rpc(method: string, code: string, seconds: number): void {
    if (!this.rpcDuration.observe(method, code, "", seconds)) this.rpcDuration.create(method, code, "", { method, code }, seconds);
  }

  committed(seconds: number): void {
    if (!this.commitDuration.observe("", "", "", seconds)) this.commitDuration.create("", "", "", {}, seconds);
  }

  /** The Prometheus text exposition of every metric. */
  scrape(): Promise<string> {
    return this.registry.metrics();
  }

  get contentType(): string {
    return this.registry.contentType;
  }
}
