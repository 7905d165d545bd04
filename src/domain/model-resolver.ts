import { quoted } from "./echo";
import { invalidArgument, permissionDenied } from "./errors";
import type { FamilyTable } from "./model-families";
import { isProviderId, providerInfo, PROVIDERS } from "./providers";
import type { ProviderId } from "./types";
import { checkModel } from "./validation";
import type { WaitTarget } from "./waiters";

/** Valid names kept at most per provider; past it that cache starts over (names are client input). */
const MODEL_CACHE_LIMIT = 1024;
/** The cache slot for requests that leave the provider to be inferred. */
const INFERRED_PROVIDER = "";

/**
 * Model name → the keys it needs (provider, family, whether it is an embedding model, which no
 * trial key serves), through a small cache: proxies ask for the same few model names all day,
 * and walking the pattern table each time is a visible share of a lease. The name and provider
 * are validated before the cache is asked, so that no name skips a check; the cache is one map
 * per provider (and one for "infer it"), so that no name of one entry can spell the key of
 * another. Only valid names are cached.
 */
export class ModelResolver {
  private readonly cache = new Map<ProviderId | typeof INFERRED_PROVIDER, Map<string, WaitTarget>>();

  constructor(
    private readonly families: FamilyTable,
    /** Families that may be leased at all; null: every family. */
    private readonly allowedFamilies: ReadonlySet<string> | null,
  ) {}

  /** The model resolved, or InvalidArgument naming it. */
  resolve(model: string, provider?: ProviderId): WaitTarget {
    checkModel(model);
    if (provider !== undefined && !isProviderId(provider)) {
      throw invalidArgument(`provider ${quoted(provider)} is not one of ${PROVIDERS.map((p) => p.id).join(", ")}`);
    }
    const slot = provider ?? INFERRED_PROVIDER;
    const cache = this.cache.get(slot);
    const hit = cache?.get(model);
    if (hit) return hit;
    const resolved = this.families.resolve(model, provider);
    const target: WaitTarget = {
      ...resolved,
      embedding: providerInfo(resolved.provider).embeddingModels.test(model),
    };
    if (!cache) {
      this.cache.set(slot, new Map([[model, target]]));
    } else {
      if (cache.size >= MODEL_CACHE_LIMIT) cache.clear();
      cache.set(model, target);
    }
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
