import { Writable } from "node:stream";
import { create, isMessage } from "@bufbuild/protobuf";
import { durationMs, timestampFromMs, timestampMs } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError } from "@connectrpc/connect";
import { ErrorCode, PoolError } from "../../../src/domain/errors";
import type { KeyStatus as DomainKeyStatus } from "../../../src/domain/types";
import { createLogger } from "../../../src/log";
import {
  disableStateFromProto,
  durationFromProto,
  keyStatusToProto,
  leaseToProto,
  providerFromProto,
  requiredProviderFromProto,
} from "../../../src/transport/convert";
import { INTERNAL_MESSAGE, toConnectError } from "../../../src/transport/errors";
import { effectiveMaxWaitMs } from "../../../src/transport/key-pool-service";
import { RetryInfoSchema } from "../../../gen/ts/google/rpc/error_details_pb";
import { KeyState, LeaseResponseSchema, Provider } from "../../../gen/ts/keypool/v1/keypool_pb";

const status: DomainKeyStatus = {
  keyHash: "oai-0123456789abcdef",
  provider: "openai",
  modelFamilies: ["turbo", "gpt4"],
  organizationId: "",
  trial: true,
  state: "revoked",
  stateReason: "upstream answered 401",
  readyAt: 1_700_000_001_000,
  holdUntil: 1_700_000_001_000,
  cooldownUntil: 0,
  rateLimitedAt: 0,
  lastUsed: 1_700_000_000_000,
  lastChecked: 0,
  promptCount: 3,
  usage: { turbo: { inputTokens: 10, outputTokens: 5, prompts: 3 } },
  inFlight: 2,
  leaseCount: 4,
};

describe("convert", () => {
  it("turns a domain status into keypool.v1.KeyStatus, with 0 times unset", () => {
    const proto = keyStatusToProto(status);
    expect(proto.provider).toBe(Provider.OPENAI);
    expect(proto.state).toBe(KeyState.REVOKED);
    expect(proto.stateReason).toBe("upstream answered 401");
    expect(proto.trial).toBe(true);
    expect(timestampMs(proto.readyAt!)).toBe(status.readyAt);
    expect(timestampMs(proto.lastUsed!)).toBe(status.lastUsed);
    expect(proto.cooldownUntil).toBeUndefined();
    expect(proto.rateLimitedAt).toBeUndefined();
    expect(proto.lastChecked).toBeUndefined();
    expect(proto.promptCount).toBe(3n);
    expect(proto.leaseCount).toBe(4n);
    expect(proto.inFlight).toBe(2);
    expect(proto.usage.turbo).toMatchObject({ inputTokens: 10n, outputTokens: 5n, prompts: 3n });
  });

  it("converts a lease", () => {
    const lease = leaseToProto({
      key: "sk-x", keyHash: "ant-0123456789abcdef", provider: "anthropic", modelFamily: "claude",
      organizationId: "", leaseId: "l1", leaseExpiresAt: 1_700_000_600_000,
    });
    expect(lease.provider).toBe(Provider.ANTHROPIC);
    expect(timestampMs(lease.leaseExpiresAt!)).toBe(1_700_000_600_000);
  });

  it("makes a lease the message create() makes, the fields in the same order", () => {
    for (const leaseExpiresAt of [1_700_000_600_123, 0, 1, 999, -1_000]) {
      const lease = {
        key: "sk-x", keyHash: "oai-0123456789abcdef", provider: "openai" as const, modelFamily: "turbo",
        organizationId: "org-1", leaseId: "l1", leaseExpiresAt,
      };
      const expected = create(LeaseResponseSchema, {
        key: lease.key, keyHash: lease.keyHash, provider: Provider.OPENAI, modelFamily: lease.modelFamily,
        organizationId: lease.organizationId, leaseId: lease.leaseId,
        leaseExpiresAt: leaseExpiresAt > 0 ? timestampFromMs(leaseExpiresAt) : undefined,
      });
      expect(leaseToProto(lease)).toEqual(expected);
      expect(Object.keys(leaseToProto(lease))).toEqual(Object.keys(expected));
      if (expected.leaseExpiresAt) expect(Object.keys(leaseToProto(lease).leaseExpiresAt!)).toEqual(Object.keys(expected.leaseExpiresAt));
      expect(isMessage(leaseToProto(lease), LeaseResponseSchema)).toBe(true);
    }
  });

  it("maps providers: UNSPECIFIED is inferred, unknown numbers are INVALID_ARGUMENT", () => {
    expect(providerFromProto(Provider.UNSPECIFIED)).toBeUndefined();
    expect(providerFromProto(Provider.OPENAI)).toBe("openai");
    expect(providerFromProto(Provider.ANTHROPIC)).toBe("anthropic");
    expect(() => providerFromProto(99 as Provider)).toThrow(PoolError);
    expect(() => requiredProviderFromProto(Provider.UNSPECIFIED)).toThrow(/provider is required/);
  });

  it("maps DisableKey states: UNSPECIFIED means DISABLED, ACTIVE is refused", () => {
    expect(disableStateFromProto(KeyState.UNSPECIFIED)).toBe("disabled");
    expect(disableStateFromProto(KeyState.DISABLED)).toBe("disabled");
    expect(disableStateFromProto(KeyState.REVOKED)).toBe("revoked");
    expect(disableStateFromProto(KeyState.OVER_QUOTA)).toBe("over_quota");
    expect(() => disableStateFromProto(KeyState.ACTIVE)).toThrow(/EnableKey/);
  });

  it("reads durations: absent is 0, negative is refused", () => {
    expect(durationFromProto(undefined, "max_wait")).toBe(0);
    expect(durationFromProto({ $typeName: "google.protobuf.Duration", seconds: 1n, nanos: 500_000_000 }, "max_wait")).toBe(1500);
    expect(() => durationFromProto({ $typeName: "google.protobuf.Duration", seconds: -1n, nanos: 0 }, "max_wait")).toThrow(/max_wait/);
  });

  it("caps Lease's wait by the call's deadline", () => {
    expect(effectiveMaxWaitMs(5000, undefined)).toBe(5000);
    expect(effectiveMaxWaitMs(5000, 300)).toBe(300);
    expect(effectiveMaxWaitMs(100, 300)).toBe(100);
    expect(effectiveMaxWaitMs(5000, -5)).toBe(0);
  });
});

describe("errors", () => {
  const lines: string[] = [];
  const logger = createLogger({
    level: "info",
    destination: new Writable({ write: (chunk, _enc, done) => (lines.push(String(chunk)), done()) }),
  });

  it.each([
    [ErrorCode.InvalidArgument, Code.InvalidArgument],
    [ErrorCode.NotFound, Code.NotFound],
    [ErrorCode.PermissionDenied, Code.PermissionDenied],
    [ErrorCode.FailedPrecondition, Code.FailedPrecondition],
    [ErrorCode.ResourceExhausted, Code.ResourceExhausted],
    [ErrorCode.Unavailable, Code.Unavailable],
    [ErrorCode.Cancelled, Code.Canceled],
    [ErrorCode.AlreadyExists, Code.AlreadyExists],
    [ErrorCode.DeadlineExceeded, Code.DeadlineExceeded],
  ])("maps pool code %p to connect code %p with the pool's message", (poolCode, code) => {
    const error = toConnectError(new PoolError(poolCode, "why it failed"), logger);
    expect(error.code).toBe(code);
    expect(error.rawMessage).toBe("why it failed");
  });

  it("attaches RetryInfo to RESOURCE_EXHAUSTED", () => {
    const error = toConnectError(new PoolError(ErrorCode.ResourceExhausted, "busy", 2500), logger);
    const [info] = error.findDetails(RetryInfoSchema);
    expect(durationMs(info.retryDelay!)).toBe(2500);
  });

  it("passes ConnectErrors through", () => {
    const original = new ConnectError("nope", Code.Unauthenticated);
    expect(toConnectError(original, logger)).toBe(original);
  });

  it("turns anything else into INTERNAL with a generic message, and logs it", () => {
    lines.length = 0;
    const error = toConnectError(new TypeError("cannot read x of undefined"), logger, "keypool.v1.KeyPoolService/Lease");
    expect(error.code).toBe(Code.Internal);
    expect(error.rawMessage).toBe(INTERNAL_MESSAGE);
    expect(error.rawMessage).not.toContain("undefined");
    expect(lines.join("")).toContain("keypool.v1.KeyPoolService/Lease");
    expect(lines.join("")).toContain("TypeError");
  });
});
