import type { Clock } from "./clock";
import type { KeyChanges } from "./key-changes";
import { internFamilies, readyAtOf, usageOf } from "./key-entry";
import type { KeyTable } from "./key-table";
import type { LeaseBook } from "./leases";
import type { KeyEntry } from "./key-entry";
import type { ModelResolver } from "./model-resolver";
import { providerInfo } from "./providers";
import { planReport, type ReportLimits } from "./rate-limit-report";
import type { ProviderId } from "./types";
import { LIMITS, checkHeaders, checkModel, checkStatusCode, checkText, checkTokens } from "./validation";

export interface RateLimitReport {
  keyHash: string;
  statusCode: number;
  headers: Record<string, string>;
  leaseId?: string;
  /** The upstream error body's `type` (OpenAI and Anthropic: error.type), when the proxy read it. */
  errorType?: string;
  /** The upstream error body's `code` (OpenAI: error.code), when the proxy read it. */
  errorCode?: string;
  /** The model the request asked for: needed with 404 model_not_found. */
  model?: string;
}

export interface UsageReport {
  keyHash: string;
  model: string;
  inputTokens: number;
  outputTokens: number;
  leaseId?: string;
}

/** The reason a key revoked by a 401 carries. */
export const REVOKED_BY_UPSTREAM = "upstream answered 401 Unauthorized: the key was rejected";

/**
 * What a proxy's upstream error says about the key itself (docs/checker.md, "Learning from
 * proxies"): 404 model_not_found takes the model's family off the key; 429 insufficient_quota or
 * billing_not_active makes an ACTIVE key OVER_QUOTA. Undefined when the report is no such error;
 * InvalidArgument when an error field is too long or the model does not resolve.
 */
export type ErrorLesson = { kind: "withdraw_family"; family: string } | { kind: "over_quota"; reason: string };

export function errorLesson(r: RateLimitReport, provider: ProviderId, models: ModelResolver): ErrorLesson | undefined {
  if (r.errorType) checkText("error_type", r.errorType, LIMITS.errorFieldBytes);
  if (r.errorCode) checkText("error_code", r.errorCode, LIMITS.errorFieldBytes);
  const says = (what: string) => r.errorCode === what || r.errorType === what;
  if (r.statusCode === 404 && says("model_not_found") && r.model) {
    return { kind: "withdraw_family", family: models.resolve(r.model, provider).family };
  }
  if (r.statusCode === 429 && (says("insufficient_quota") || says("billing_not_active"))) {
    const what = says("insufficient_quota") ? "insufficient_quota" : "billing_not_active";
    return { kind: "over_quota", reason: `a proxy reported 429 ${what}: the key's quota or billing is exhausted` };
  }
  return undefined;
}

/**
 * What proxies report back after using a key: an upstream answer (ReportRateLimit) turns into a
 * hold, a cooldown or a revocation (rate-limit-report.ts decides which); a finished prompt
 * (IncrementUsage) counts its tokens and ends its lease.
 */
export class ReportHandling {
  constructor(
    private readonly clock: Clock,
    private readonly keys: KeyTable,
    private readonly changes: KeyChanges,
    private readonly leases: LeaseBook<KeyEntry>,
    private readonly models: ModelResolver,
    private readonly limits: ReportLimits,
  ) {}

  reportRateLimit(r: RateLimitReport): { readyAt: number } {
    const headers = r.headers ?? {};
    checkStatusCode(r.statusCode);
    checkHeaders(headers);
    const entry = this.keys.mustGet(r.keyHash);
    if (this.learnFromError(entry, r)) return { readyAt: entry.readyAt };
    const now = this.clock.now();
    const effect = planReport(r.statusCode, headers, providerInfo(entry.provider).rateLimitHeaders, now, this.limits);
    switch (effect.kind) {
      case "none":
        break;
      case "revoke":
        if (entry.state !== "revoked") {
          entry.state = "revoked";
          entry.stateReason = REVOKED_BY_UPSTREAM;
          this.changes.commit(entry, "revoked", "remove", true);
        }
        break;
      case "cooldown":
        // A later ready time frees no key: nobody waiting needs serving.
        entry.rateLimitedAt = now;
        entry.cooldownUntil = Math.max(entry.cooldownUntil, now + effect.waitMs);
        entry.readyAt = readyAtOf(entry);
        this.changes.commit(entry, "reported", "reposition", false, now);
        break;
      case "hold": {
        const before = entry.holdUntil;
        entry.holdUntil = now + effect.waitMs;
        if (entry.holdUntil !== before) {
          entry.readyAt = readyAtOf(entry);
          this.changes.commit(entry, "reported", "reposition", true, now);
        }
        break;
      }
    }
    return { readyAt: entry.readyAt };
  }

  /**
   * What a proxy's upstream error says about the key itself (docs/checker.md, "Learning from
   * proxies"): 404 model_not_found takes the model's family off the key; 429 insufficient_quota
   * or billing_not_active makes it OVER_QUOTA. True when the report was such an error.
   */
  private learnFromError(entry: KeyEntry, r: RateLimitReport): boolean {
    const lesson = errorLesson(r, entry.provider, this.models);
    if (!lesson) return false;
    if (lesson.kind === "withdraw_family") {
      const family = lesson.family;
      if (!entry.modelFamilies.includes(family)) return true;
      // Out of the index while its families change: the index files a key by family.
      this.keys.index.remove(entry);
      const families = entry.modelFamilies.filter((f) => f !== family);
      entry.modelFamilies = internFamilies(families);
      entry.has32k = families.includes("gpt4-32k");
      this.changes.commit(entry, "family_withdrawn", entry.state === "active" ? "add" : "none", true);
      return true;
    }
    // An operator's DISABLED stays; a REVOKED key stays revoked.
    if (entry.state !== "active") return true;
    entry.state = "over_quota";
    entry.stateReason = lesson.reason;
    this.changes.commit(entry, "over_quota", "remove", true);
    return true;
  }

  incrementUsage(u: UsageReport): void {
    checkModel(u.model);
    checkTokens("input_tokens", u.inputTokens);
    checkTokens("output_tokens", u.outputTokens);
    const entry = this.keys.mustGet(u.keyHash);
    const { family } = this.models.resolve(u.model, entry.provider);
    entry.promptCount++;
    const usage = usageOf(entry, family);
    usage.inputTokens += u.inputTokens;
    usage.outputTokens += u.outputTokens;
    usage.prompts++;
    // An unknown or expired lease id is fine: the usage still counts.
    if (u.leaseId && this.leases.ownerOf(u.leaseId) === entry) {
      this.leases.end(u.leaseId);
      entry.inFlight--;
    }
    this.changes.commit(entry, "usage", "none", false);
  }
}
