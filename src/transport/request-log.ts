/**
 * One debug line per RPC: which procedure, how it ended, how long it took. Never a header, never
 * a message: requests carry bearer tokens and API keys (AddKeys), responses carry keys (Lease).
 * Off unless KEYPOOL_LOG_LEVEL is debug or trace, and then cheap.
 */
import { Code, ConnectError, type Interceptor } from "@connectrpc/connect";
import { PoolError } from "../domain/errors";
import type { Logger } from "../log";
import { onStreamEnd } from "./stream-end";

function codeName(err: unknown): string {
  // PoolError codes are gRPC's numbers (src/domain/errors.ts).
  const code = err instanceof PoolError ? (err.code as number as Code) : ConnectError.from(err).code;
  return Code[code] ?? String(code);
}

export function requestLogInterceptor(logger: Logger): Interceptor {
  // Without debug the call passes straight through: no promise, no clock read, no closure.
  return (next) => (req) => (logger.isLevelEnabled("debug") ? logged(next, req) : next(req));

  async function logged(next: Parameters<Interceptor>[0], req: Parameters<ReturnType<Interceptor>>[0]) {
    const procedure = `${req.service.typeName}/${req.method.name}`;
    const started = performance.now();
    const done = (err?: unknown) => {
      const ms = Math.round((performance.now() - started) * 10) / 10;
      if (err === undefined) logger.debug({ procedure, code: "OK", ms }, "rpc");
      else logger.debug({ procedure, code: codeName(err), ms, error: err instanceof Error ? err.message : String(err) }, "rpc failed");
    };
    try {
      const res = await next(req);
      if (!res.stream) {
        done();
        return res;
      }
      return {
        ...res,
        message: onStreamEnd(res.message, {
          ok: () => done(),
          error: (err) => {
            done(err);
            return err;
          },
        }),
      };
    } catch (err) {
      done(err);
      throw err;
    }
  }
}
