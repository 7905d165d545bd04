/**
 * Times every unary RPC of a service implementation, by method and status code. It wraps the
 * implementation itself, so that every server stack mounting it is measured the same way.
 * Streams (WatchKeys) last as long as their client wants: they are counted by keypool_watchers
 * instead. Calls refused before they reach the service (no token, shutting down) are not timed.
 */
import type { DescService } from "@bufbuild/protobuf";
import { Code, ConnectError, type ServiceImpl } from "@connectrpc/connect";
import { PoolError } from "../domain/errors";
import type { KeypoolMetrics } from "./metrics";

/** The gRPC code name of whatever a handler threw (PoolError codes are gRPC's numbers). */
export function codeNameOf(err: unknown): string {
  const code = err instanceof PoolError ? (err.code as number as Code) : ConnectError.from(err).code;
  return Code[code] ?? "Unknown";
}

type AnyHandler = (req: unknown, ctx: unknown) => unknown;

export function instrumentService<S extends DescService>(
  service: S,
  impl: ServiceImpl<S>,
  metrics: KeypoolMetrics,
): ServiceImpl<S> {
  const wrapped: Record<string, unknown> = { ...impl };
  for (const method of service.methods) {
    if (method.methodKind !== "unary") continue;
    const handler = (impl as Record<string, AnyHandler | undefined>)[method.localName];
    if (!handler) continue;
    wrapped[method.localName] = async (req: unknown, ctx: unknown) => {
      const started = performance.now();
      try {
        const res = await handler.call(impl, req, ctx);
        metrics.rpc(method.name, "OK", (performance.now() - started) / 1000);
        return res;
      } catch (err) {
        metrics.rpc(method.name, codeNameOf(err), (performance.now() - started) / 1000);
        throw err;
      }
    };
  }
  return wrapped as ServiceImpl<S>;
}
