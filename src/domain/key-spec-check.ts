/**
 * The checks an operator's input passes before it changes any pool: a key to add (AddKeys, the
 * configured keys), and the state and reason of DisableKey. Written once, so that the in-memory
 * pool (key-administration.ts) and any pool kept elsewhere refuse the same input the same way.
 */
import { quoted } from "./echo";
import { ErrorCode, PoolError, invalidArgument } from "./errors";
import type { KeyHasher } from "./key-hash";
import type { FamilyTable } from "./model-families";
import { isProviderId, providerInfo, PROVIDERS } from "./providers";
import { DISABLE_STATES, isDisableState, type DisableState, type KeySpec, type ProviderId } from "./types";
import { LIMITS, checkKeySecret, checkText } from "./validation";

/** A key spec that passed every check, with what the pool derives from it. */
export interface CheckedSpec {
  keyHash: string;
  provider: ProviderId;
  /** The secret, trimmed. */
  key: string;
  organizationId: string;
  modelFamilies: readonly string[];
  trial: boolean;
  /** The spec named the families: the key checker keeps them. */
  familiesPinned: boolean;
}

/** Checks `spec` (the i-th of a call) and derives its hash and families, or throws InvalidArgument. */
export function checkSpec(spec: KeySpec, i: number, families: FamilyTable, keyHasher: KeyHasher): CheckedSpec {
  if (!isProviderId(spec?.provider)) {
    throw invalidArgument(
      `keys[${i}]: provider ${quoted(spec?.provider ?? "")} is not one of ${PROVIDERS.map((p) => p.id).join(", ")}`,
    );
  }
  checkKeySecret(spec.key, `keys[${i}]`, providerInfo(spec.provider));
  const key = spec.key.trim();
  const organizationId = spec.organizationId ?? "";
  if (organizationId !== "") checkText(`keys[${i}]: organization id`, organizationId, LIMITS.organizationIdBytes);
  return {
    keyHash: keyHasher(spec.provider, key, organizationId),
    provider: spec.provider,
    key,
    organizationId,
    modelFamilies: familiesForSpec(spec, i, families),
    trial: spec.trial === true,
    familiesPinned: (spec.modelFamilies?.length ?? 0) > 0,
  };
}

/** The error for a spec whose hash already belongs to a different key. */
export function hashCollision(i: number, keyHash: string): PoolError {
  return new PoolError(
    ErrorCode.AlreadyExists,
    `keys[${i}]: its key hash ${keyHash} already belongs to a different key (a hash collision); the key was not added`,
  );
}

/** The spec's families, checked against the table; none given: the provider's defaults. */
function familiesForSpec(spec: KeySpec, i: number, families: FamilyTable): readonly string[] {
  const known = families.familiesOf(spec.provider);
  const asked = spec.modelFamilies ?? [];
  if (!Array.isArray(asked)) throw invalidArgument(`keys[${i}]: model families must be a list`);
  if (asked.length === 0) return providerInfo(spec.provider).defaultFamilies;
  for (const family of asked) {
    if (typeof family !== "string" || !known.has(family)) {
      throw invalidArgument(`keys[${i}]: ${quoted(family)} is not a ${spec.provider} model family (known: ${[...known].join(", ")})`);
    }
  }
  return [...new Set(asked)];
}

const DEFAULT_REASONS: Record<DisableState, string> = {
  disabled: "disabled by an operator",
  revoked: "revoked by an operator",
  over_quota: "over quota, as an operator reported",
};

/** DisableKey's reason: the operator's words, or the state's default; InvalidArgument for a bad state or a long reason. */
export function disableReason(state: DisableState, reason: string | undefined): string {
  if (!isDisableState(state)) throw invalidArgument(`state ${quoted(state)} is not one of ${DISABLE_STATES.join(", ")}`);
  const text = reason?.trim() || DEFAULT_REASONS[state];
  checkText("reason", text, LIMITS.reasonBytes);
  return text;
}
