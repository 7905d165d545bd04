/**
 * The few keypool calls the benchmarks make outside the load itself, over grpc-raw.ts: one Lease
 * whose grpc-status and answer are checked, and the pool's total lease count from ListKeys, so
 * that a run can prove every Lease it sent was granted (lease_count grows only on success).
 */
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import {
  DisableKeyRequestSchema,
  KeyState,
  LeaseRequestSchema,
  LeaseResponseSchema,
  ListKeysRequestSchema,
  ListKeysResponseSchema,
  Provider,
  type KeyStatus,
} from "../../gen/ts/keypool/v1/keypool_pb";
import { connect, unary } from "./grpc-raw";

export const LEASE = "/keypool.v1.KeyPoolService/Lease";
export const CHECK = "/grpc.health.v1.Health/Check";
export const LIST_KEYS = "/keypool.v1.KeyPoolService/ListKeys";
export const DISABLE_KEY = "/keypool.v1.KeyAdminService/DisableKey";

export const BENCH_MODEL = "gpt-3.5-turbo";

export function leaseRequestBytes(model = BENCH_MODEL): Uint8Array {
  return toBinary(LeaseRequestSchema, create(LeaseRequestSchema, { model }));
}

/** One Lease; throws unless grpc-status is OK and a key came back. */
export async function leaseOnce(port: number, model = BENCH_MODEL): Promise<string> {
  const session = await connect(port);
  try {
    const reply = await unary(session, LEASE, leaseRequestBytes(model));
    if (reply.grpcStatus !== 0) throw new Error(`Lease failed: grpc-status ${reply.grpcStatus} ${reply.grpcMessage}`);
    const lease = fromBinary(LeaseResponseSchema, reply.message);
    if (!lease.key || !lease.keyHash || !lease.leaseId) throw new Error("Lease answered OK without a key");
    return lease.keyHash;
  } finally {
    session.destroy();
  }
}

/** Every key of the pool, page by page (ListKeys pages keep each response under 4 MiB). */
export async function listAllKeys(port: number): Promise<KeyStatus[]> {
  const session = await connect(port);
  try {
    const keys: KeyStatus[] = [];
    let pageToken = "";
    do {
      const request = toBinary(ListKeysRequestSchema, create(ListKeysRequestSchema, { pageSize: 5000, pageToken }));
      const reply = await unary(session, LIST_KEYS, request, 120_000);
      if (reply.grpcStatus !== 0) throw new Error(`ListKeys failed: grpc-status ${reply.grpcStatus} ${reply.grpcMessage}`);
      const page = fromBinary(ListKeysResponseSchema, reply.message);
      keys.push(...page.keys);
      pageToken = page.nextPageToken;
    } while (pageToken !== "");
    return keys;
  } finally {
    session.destroy();
  }
}

/** Keys in the pool and the sum of their lease_count. */
export async function poolTotals(port: number): Promise<{ keys: number; leases: number; active: number }> {
  const keys = await listAllKeys(port);
  let leases = 0;
  let active = 0;
  for (const k of keys) {
    leases += Number(k.leaseCount);
    if (k.state === KeyState.ACTIVE) active++;
  }
  return { keys: keys.length, leases, active };
}

export function disableKeyBytes(keyHash: string, reason: string): Uint8Array {
  return toBinary(DisableKeyRequestSchema, create(DisableKeyRequestSchema, { keyHash, state: KeyState.DISABLED, reason }));
}

/** The hash of the first key of `provider` in ListKeys. */
export async function findKeyHash(port: number, provider: "openai" | "anthropic"): Promise<string> {
  const session = await connect(port);
  try {
    const reply = await unary(session, LIST_KEYS, toBinary(ListKeysRequestSchema, create(ListKeysRequestSchema, { provider: provider === "openai" ? Provider.OPENAI : Provider.ANTHROPIC })));
    if (reply.grpcStatus !== 0) throw new Error(`ListKeys failed: grpc-status ${reply.grpcStatus} ${reply.grpcMessage}`);
    const { keys } = fromBinary(ListKeysResponseSchema, reply.message);
    if (keys.length === 0) throw new Error(`no ${provider} key in the pool`);
    return keys[0].keyHash;
  } finally {
    session.destroy();
  }
}
