import { invalidArgument, permissionDenied } from "./errors";
import type { FamilyTable } from "./model-families";
import { isProviderId, providerInfo, PROVIDERS } from "./providers";
import type { ProviderId } from "./types";
import { checkModel } from "./validation";
import type { WaitTarget } from "./waiters";

/** Valid names kept at most; past it the cache starts over (names are client input). */
const MODEL_CACHE_LIMIT = 1024;

/**
 * Model name → the keys it needs (provider, family, whether it is an embedding model, which no
 * trial key serves), through a small cache: proxies ask for the same few model names all day,
 * and walking the pattern table each time is a visible share of a lease. Only valid names are
 * cached.
 */
export class ModelResolver {
  private readonly cache = new Map<string, WaitTarget>();

  constructor(
    private readonly families: FamilyTable,
    /** Families that may be leased at all; null: every family. */
    private readonly allowedFamilies: ReadonlySet<string> | null,
  ) {}

  /** The model resolved, or InvalidArgument naming it. */
  resolve(model: string, provider?: ProviderId): WaitTarget {
    const cacheKey = provider === undefined ? model : `${provider}\u0000${model}`;
    const hit = typeof model === "string" ? this.cache.get(cacheKey) : undefined;
    if (hit) return hit;
    checkModel(model);
    if (provider !== undefined && !isProviderId(provider)) {
      throw invalidArgument(`provider ${JSON.stringify(provider)} is not one of ${PROVIDERS.map((p) => p.id).join(", ")}`);
    }
    const resolved = this.families.resolve(model, provider);
    const target: WaitTarget = {
      ...resolved,
      embedding: providerInfo(resolved.provider).embeddingModels.test(model),
    };
    if (this.cache.size >= MODEL_CACHE_LIMIT) this.cache.clear();
    this.cache.set(cacheKey, target);
    return target;
  }

  /** Like resolve, then PermissionDenied when the operator does not allow the model's family. */
  resolveAllowed(model: string, provider?: ProviderId): WaitTarget {
    const resolved = this.resolve(model, provider);
    if (this.allowedFamilies && !this.allowedFamilies.has(resolved.family)) {
      throw permissionDenied(`the operator does not allow the model family ${resolved.family} (ALLOWED_MODEL_FAMILIES)`);
    }
    return resolved;
  }
}
