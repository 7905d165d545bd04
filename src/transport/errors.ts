/**
 * Errors on the wire. Domain errors carry gRPC's own code numbers, so the mapping is a table;
 * RESOURCE_EXHAUSTED carries a google.rpc.RetryInfo detail that every gRPC client can decode from
 * grpc-status-details-bin. Anything else is a bug: the client gets INTERNAL with a generic
 * message, and the server log gets the error (never a request, so never a secret).
 */
import { Code, ConnectError, type Interceptor } from "@connectrpc/connect";
import { ErrorCode, PoolError } from "../domain/errors";
import type { Logger } from "../log";
import { RetryInfoSchema } from "../../gen/ts/google/rpc/error_details_pb";
import { durationToProto } from "./convert";
import { onStreamEnd } from "./stream-end";

const CODE_OF: Record<ErrorCode, Code> = {
  [ErrorCode.Cancelled]: Code.Canceled,
  [ErrorCode.InvalidArgument]: Code.InvalidArgument,
  [ErrorCode.DeadlineExceeded]: Code.DeadlineExceeded,
  [ErrorCode.NotFound]: Code.NotFound,
  [ErrorCode.AlreadyExists]: Code.AlreadyExists,
  [ErrorCode.PermissionDenied]: Code.PermissionDenied,
  [ErrorCode.ResourceExhausted]: Code.ResourceExhausted,
  [ErrorCode.FailedPrecondition]: Code.FailedPrecondition,
  [ErrorCode.Unavailable]: Code.Unavailable,
};

export const INTERNAL_MESSAGE = "internal error; the server log has the details";

export function poolErrorToConnect(err: PoolError): ConnectError {
  const code = CODE_OF[err.code] ?? Code.Unknown;
  if (code === Code.ResourceExhausted && err.retryAfterMs !== undefined) {
    return new ConnectError(err.message, code, undefined, [
      { desc: RetryInfoSchema, value: { retryDelay: durationToProto(err.retryAfterMs) } },
    ]);
  }
  return new ConnectError(err.message, code);
}

/** Maps whatever a handler threw to what the client sees. */
export function toConnectError(err: unknown, logger: Logger, procedure?: string): ConnectError {
  if (err instanceof PoolError) return poolErrorToConnect(err);
  if (err instanceof ConnectError) return err;
  // The client went away or the call was aborted: nothing went wrong on our side.
  if (err instanceof Error && err.name === "AbortError") {
    return new ConnectError("the call was canceled", Code.Canceled);
  }
  logger.error(
    { procedure, errName: err instanceof Error ? err.name : typeof err, stack: err instanceof Error ? err.stack : undefined },
    "unexpected error in handler",
  );
  return new ConnectError(INTERNAL_MESSAGE, Code.Internal);
}

/**
 * Maps every error a handler throws, for unary and streaming calls alike. Mounted as the
 * outermost interceptor, so that no raw exception text ever reaches a client.
 */
export function errorMappingInterceptor(logger: Logger): Interceptor {
  return (next) => async (req) => {
    try {
      const res = await next(req);
      if (!res.stream) return res;
      return {
        ...res,
        message: onStreamEnd(res.message, {
          error: (err) => toConnectError(err, logger, `${req.service.typeName}/${req.method.name}`),
        }),
      };
    } catch (err) {
      throw toConnectError(err, logger, `${req.service.typeName}/${req.method.name}`);
    }
  };
}
