/**
 * A proxy's round trip with keypool from TypeScript, using the generated code in gen/ts and
 * connect-node (gRPC over HTTP/2):
 *
 *     npx tsx examples/typescript-client.ts http://127.0.0.1:50051 gpt-4o-mini
 *
 * Either port works: the main port (KEYPOOL_PORT, 50051) or the native gRPC port
 * (KEYPOOL_GRPC_PORT, say 50052), which serves more leases per second. One client (one HTTP/2
 * connection) is made once and kept for every call.
 *
 * Leases a key (waiting up to 2 s), reports the upstream's answer, records the tokens spent, and
 * lists the keys (page by page). When every key is busy, RESOURCE_EXHAUSTED says when to retry (RetryInfo).
 */
import type { MessageInitShape } from "@bufbuild/protobuf";
import { durationFromMs, durationMs, timestampMs } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError, createClient, type Client } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { RetryInfoSchema } from "../gen/ts/google/rpc/error_details_pb";
import { KeyPoolService, type KeyStatus, type ListKeysRequestSchema } from "../gen/ts/keypool/v1/keypool_pb";

/** Every matching key, page by page: each response fits a client's default 4 MiB limit. */
export async function listAllKeys(pool: Client<typeof KeyPoolService>, request: MessageInitShape<typeof ListKeysRequestSchema> = {}) {
  const keys: KeyStatus[] = [];
  let pageToken = "";
  do {
    const page = await pool.listKeys({ ...request, pageToken });
    keys.push(...page.keys);
    pageToken = page.nextPageToken;
  } while (pageToken !== "");
  return keys;
}

export async function runExample(baseUrl: string, model: string) {
  const pool = createClient(KeyPoolService, createGrpcTransport({ baseUrl }));

  const lease = await pool.lease({ model, maxWait: durationFromMs(2000) }, { timeoutMs: 5000 });
  // lease.key goes upstream; only lease.keyHash is ever logged.

  // ... call the upstream with lease.key, then report what it answered:
  const report = await pool.reportRateLimit({
    keyHash: lease.keyHash,
    statusCode: 200,
    headers: { "x-ratelimit-remaining-requests": "0", "x-ratelimit-reset-requests": "6m0s" },
    leaseId: lease.leaseId,
  });
  await pool.incrementUsage({
    keyHash: lease.keyHash,
    model,
    inputTokens: 120n,
    outputTokens: 30n,
    leaseId: lease.leaseId,
  });
  const keys = await listAllKeys(pool);

  // Every key is now held: without max_wait, Lease answers RESOURCE_EXHAUSTED with RetryInfo.
  let retryAfterMs: number | undefined;
  try {
    await pool.lease({ model });
  } catch (err) {
    const error = ConnectError.from(err);
    if (error.code !== Code.ResourceExhausted) throw error;
    const [info] = error.findDetails(RetryInfoSchema);
    retryAfterMs = info?.retryDelay ? durationMs(info.retryDelay) : undefined;
  }

  return {
    keyHash: lease.keyHash,
    family: lease.modelFamily,
    readyAt: report.readyAt ? timestampMs(report.readyAt) : 0,
    keys: keys.map((k) => ({ keyHash: k.keyHash, promptCount: Number(k.promptCount) })),
    retryAfterMs,
  };
}

if (require.main === module) {
  const [baseUrl = "http://127.0.0.1:50051", model = "gpt-4o-mini"] = process.argv.slice(2);
  runExample(baseUrl, model).then(
    (result) => console.log(JSON.stringify(result, null, 2)),
    (err: unknown) => {
      console.error(String(err));
      process.exit(1);
    },
  );
}
