/**
 * Domain errors carry the gRPC status code of docs/errors.md's table, so that the transport
 * maps them without knowing why they happened. The numbers are gRPC's own; the domain does not
 * import any RPC library.
 */
export enum ErrorCode {
  Cancelled = 1,
  InvalidArgument = 3,
  DeadlineExceeded = 4,
  NotFound = 5,
  AlreadyExists = 6,
  PermissionDenied = 7,
  ResourceExhausted = 8,
  FailedPrecondition = 9,
  Unavailable = 14,
}

export class PoolError extends Error {
  override readonly name = "PoolError";

  constructor(
    readonly code: ErrorCode,
    message: string,
    /** For ResourceExhausted: how long until a key is ready (sent as google.rpc.RetryInfo). */
    readonly retryAfterMs?: number,
  ) {
    super(message);
  }
}

export const invalidArgument = (message: string) => new PoolError(ErrorCode.InvalidArgument, message);
export const notFound = (message: string) => new PoolError(ErrorCode.NotFound, message);
export const failedPrecondition = (message: string) =>
  new PoolError(ErrorCode.FailedPrecondition, message);
export const permissionDenied = (message: string) =>
  new PoolError(ErrorCode.PermissionDenied, message);
export const resourceExhausted = (message: string, retryAfterMs?: number) =>
  new PoolError(ErrorCode.ResourceExhausted, message, retryAfterMs);
