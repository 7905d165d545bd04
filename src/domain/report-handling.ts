import type { Clock } from "./clock";
import type { KeyChanges } from "./key-changes";
import { readyAtOf, usageOf } from "./key-entry";
import type { KeyTable } from "./key-table";
import type { LeaseBook } from "./leases";
import type { KeyEntry } from "./key-entry";
import type { ModelResolver } from "./model-resolver";
import { providerInfo } from "./providers";
import { planReport, type ReportLimits } from "./rate-limit-report";
import { checkHeaders, checkModel, checkStatusCode, checkTokens } from "./validation";

export interface RateLimitReport {
  keyHash: string;
  statusCode: number;
  headers: Record<string, string>;
  leaseId?: string;
}

export interface UsageReport {
  keyHash: string;
  model: string;
  inputTokens: number;
  outputTokens: number;
  leaseId?: string;
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
    const now = this.clock.now();
    const effect = planReport(r.statusCode, headers, providerInfo(entry.provider).rateLimitHeaders, now, this.limits);
    switch (effect.kind) {
      case "none":
        break;
      case "revoke":
        if (entry.state !== "revoked") {
          entry.state = "revoked";
          entry.stateReason = "upstream answered 401 Unauthorized: the key was rejected";
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
    if (u.leaseId && this.leases.get(u.leaseId)?.owner === entry) {
      this.leases.end(u.leaseId);
      entry.inFlight--;
    }
    this.changes.commit(entry, "usage", "none", false);
  }
}
