import { durationMs } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError } from "@connectrpc/connect";
import { RetryInfoSchema } from "../../../gen/ts/google/rpc/error_details_pb";

/**
 * No key could be leased: keypool answered an error (no key ready within max_wait, no key serves
 * the model, a bad model name, missing credentials), or the caller's deadline passed first.
 * `code` is the gRPC status code; `retryAfterMs` is the RetryInfo keypool sent with
 * RESOURCE_EXHAUSTED (the time until a key is ready), when it sent one.
 */
export class NoKeyError extends Error {
  override readonly name = "NoKeyError";
  constructor(
    message: string,
    readonly code: Code,
    readonly retryAfterMs: number | undefined,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }

  static from(error: unknown): NoKeyError {
    const connectError = ConnectError.from(error);
    const [info] = connectError.findDetails(RetryInfoSchema);
    const retryAfterMs = info?.retryDelay ? durationMs(info.retryDelay) : undefined;
    return new NoKeyError(`keypool leased no key: ${connectError.message}`, connectError.code, retryAfterMs, { cause: connectError });
  }

  static aborted(): NoKeyError {
    return new NoKeyError("keypool leased no key: the call was aborted", Code.Canceled, undefined);
  }

  static deadline(): NoKeyError {
    return new NoKeyError("keypool leased no key: the deadline passed", Code.DeadlineExceeded, undefined);
  }
}
