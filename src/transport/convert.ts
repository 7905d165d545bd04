/**
 * Domain ↔ keypool.v1 conversion. Domain times are epoch milliseconds with 0 meaning "never";
 * on the wire that is an absent Timestamp, so clients test presence rather than compare to 1970.
 */
import { create } from "@bufbuild/protobuf";
import {
  durationFromMs,
  durationMs,
  TimestampSchema,
  type Duration,
  type Timestamp,
} from "@bufbuild/protobuf/wkt";
import { invalidArgument } from "../domain/errors";
import type * as domain from "../domain/types";
import {
  KeyState,
  KeyStatusSchema,
  LeaseResponseSchema,
  Provider,
  type KeyStatus,
  type LeaseResponse,
} from "../../gen/ts/keypool/v1/keypool_pb";

const PROVIDER_TO_PROTO: Record<domain.ProviderId, Provider> = {
  openai: Provider.OPENAI,
  anthropic: Provider.ANTHROPIC,
  google: Provider.GOOGLE_AI,
  mistral: Provider.MISTRAL,
  azure: Provider.AZURE_OPENAI,
  bedrock: Provider.AWS_BEDROCK,
  vertex: Provider.GCP_VERTEX,
};

const PROVIDER_FROM_PROTO = new Map<Provider, domain.ProviderId>(
  Object.entries(PROVIDER_TO_PROTO).map(([id, proto]) => [proto, id as domain.ProviderId]),
);

const STATE_TO_PROTO: Record<domain.KeyState, KeyState> = {
  active: KeyState.ACTIVE,
  disabled: KeyState.DISABLED,
  revoked: KeyState.REVOKED,
  over_quota: KeyState.OVER_QUOTA,
};

export function providerToProto(provider: domain.ProviderId): Provider {
  return PROVIDER_TO_PROTO[provider];
}

/** UNSPECIFIED → undefined (the pool infers it, or "all providers" in filters). */
export function providerFromProto(provider: Provider): domain.ProviderId | undefined {
  if (provider === Provider.UNSPECIFIED) return undefined;
  const id = PROVIDER_FROM_PROTO.get(provider);
  if (id === undefined) throw invalidArgument(`unknown provider ${provider as number}`);
  return id;
}

const WIRE_PROVIDER_NAMES = Object.values(PROVIDER_TO_PROTO)
  .map((p) => `PROVIDER_${Provider[p]}`)
  .join(", ");

/** The domain's name for a wire provider ("openai", "bedrock", ...); "?" for UNSPECIFIED or unknown. */
export function providerName(provider: Provider): string {
  return PROVIDER_FROM_PROTO.get(provider) ?? "?";
}

/** For calls where the provider is required (AddKeys). */
export function requiredProviderFromProto(provider: Provider, field = "provider"): domain.ProviderId {
  const id = providerFromProto(provider);
  if (!id) throw invalidArgument(`${field} is required (${WIRE_PROVIDER_NAMES})`);
  return id;
}

export function keyStateToProto(state: domain.KeyState): KeyState {
  return STATE_TO_PROTO[state];
}

/** DisableKey's target state: UNSPECIFIED means DISABLED; ACTIVE is not a way to disable. */
export function disableStateFromProto(state: KeyState): domain.DisableState {
  switch (state) {
    case KeyState.UNSPECIFIED:
    case KeyState.DISABLED:
      return "disabled";
    case KeyState.REVOKED:
      return "revoked";
    case KeyState.OVER_QUOTA:
      return "over_quota";
    case KeyState.ACTIVE:
      throw invalidArgument("DisableKey cannot set KEY_STATE_ACTIVE: use EnableKey");
    default:
      throw invalidArgument(`unknown key state ${state as number}`);
  }
}

/** 0 (never) → absent. */
export function timestampOrUnset(ms: number): Timestamp | undefined {
  return ms > 0 ? timestampOf(ms) : undefined;
}

/**
 * The Timestamp protobuf-es's timestampFromMs makes, written out: the same fields in the same
 * order, without create() walking the descriptor (a Lease response carries one).
 */
function timestampOf(ms: number): Timestamp {
  const seconds = Math.floor(ms / 1000);
  // BigInt of a whole number of seconds within int64 is what protoInt64.parse gives.
  return { $typeName: TimestampSchema.typeName, seconds: BigInt(seconds), nanos: (ms - seconds * 1000) * 1000000 };
}

export function durationToProto(ms: number): Duration {
  return durationFromMs(Math.max(0, Math.round(ms)));
}

/** google.protobuf.Duration's own range: about 10,000 years either way. */
const DURATION_MAX_SECONDS = 315_576_000_000n;

/**
 * Absent → 0. A Duration that google.protobuf.Duration's definition rules out (nanos outside
 * -999,999,999..999,999,999, seconds and nanos of opposite signs, seconds beyond ±10,000 years)
 * or a negative one → INVALID_ARGUMENT naming the field: read as they come, "1 s minus 5 ns"
 * and "1 s plus 2e9 ns" would each be some other wait than the client meant.
 */
export function durationFromProto(duration: Duration | undefined, field: string): number {
  if (!duration) return 0;
  const { seconds, nanos } = duration;
  if (!Number.isInteger(nanos) || nanos <= -1_000_000_000 || nanos >= 1_000_000_000) {
    throw invalidArgument(`${field}.nanos is ${nanos}; it must be from -999999999 to 999999999`);
  }
  if ((seconds > 0n && nanos < 0) || (seconds < 0n && nanos > 0)) {
    throw invalidArgument(`${field} has seconds ${seconds} and nanos ${nanos}; they must not have opposite signs`);
  }
  if (seconds > DURATION_MAX_SECONDS || seconds < -DURATION_MAX_SECONDS) {
    throw invalidArgument(`${field}.seconds is ${seconds}; a Duration spans at most ±${DURATION_MAX_SECONDS} seconds`);
  }
  // Signs first: a few negative nanoseconds round to -0 ms.
  if (seconds < 0n || nanos < 0) throw invalidArgument(`${field} must not be negative`);
  const ms = durationMs(duration);
  if (!Number.isFinite(ms)) throw invalidArgument(`${field} is too long`);
  return ms;
}

/** uint64 on the wire → number; values beyond 2^53 stay large, so the pool's limits still apply. */
export function uint64ToNumber(value: bigint): number {
  return Number(value);
}

export function keyStatusToProto(status: domain.KeyStatus): KeyStatus {
  const usage: KeyStatus["usage"] = {};
  for (const [family, u] of Object.entries(status.usage)) {
    usage[family] = {
      $typeName: "keypool.v1.TokenUsage",
      inputTokens: BigInt(u.inputTokens),
      outputTokens: BigInt(u.outputTokens),
      prompts: BigInt(u.prompts),
    };
  }
  return create(KeyStatusSchema, {
    keyHash: status.keyHash,
    provider: providerToProto(status.provider),
    modelFamilies: [...status.modelFamilies],
    organizationId: status.organizationId,
    trial: status.trial,
    state: keyStateToProto(status.state),
    stateReason: status.stateReason,
    readyAt: timestampOrUnset(status.readyAt),
    rateLimitedAt: timestampOrUnset(status.rateLimitedAt),
    lastUsed: timestampOrUnset(status.lastUsed),
    lastChecked: timestampOrUnset(status.lastChecked),
    promptCount: BigInt(status.promptCount),
    usage,
    inFlight: status.inFlight,
    leaseCount: BigInt(status.leaseCount),
    cooldownUntil: timestampOrUnset(status.cooldownUntil),
  });
}

/**
 * The LeaseResponse create() would make from these fields, written out: the same fields in the
 * same order (leaseExpiresAt only when set), without create's two walks over the descriptor on
 * every Lease. test/unit/transport/convert-errors.test.ts compares the two.
 */
export function leaseToProto(lease: domain.Lease): LeaseResponse {
  const response: LeaseResponse = {
    $typeName: LeaseResponseSchema.typeName,
    key: lease.key,
    keyHash: lease.keyHash,
    provider: providerToProto(lease.provider),
    modelFamily: lease.modelFamily,
    organizationId: lease.organizationId,
    leaseId: lease.leaseId,
  };
  const expiresAt = timestampOrUnset(lease.leaseExpiresAt);
  if (expiresAt !== undefined) response.leaseExpiresAt = expiresAt;
  return response;
}
