/**
 * grpc.health.v1.Health: whether the server (service "") and each keypool service is serving.
 * Everything starts NOT_SERVING and turns SERVING once the server is ready; shutdown turns it
 * back to NOT_SERVING before anything else, so that load balancers stop sending calls first.
 */
import { Code, ConnectError, type HandlerContext, type ServiceImpl } from "@connectrpc/connect";
import { quoted } from "../domain/echo";
import {
  Health,
  HealthCheckResponse_ServingStatus as ServingStatus,
  type HealthCheckRequest,
} from "../../gen/ts/grpc/health/v1/health_pb";

export { ServingStatus };

export class HealthState {
  private readonly statuses = new Map<string, ServingStatus>();
  private readonly listeners = new Set<() => void>();

  /** `services`: the fully qualified service names to report besides "" (the whole server). */
  constructor(services: Iterable<string>) {
    this.statuses.set("", ServingStatus.NOT_SERVING);
    for (const name of services) this.statuses.set(name, ServingStatus.NOT_SERVING);
  }

  get(service: string): ServingStatus | undefined {
    return this.statuses.get(service);
  }

  /** Sets every known service (and "") to `status`. */
  setAll(status: ServingStatus): void {
    for (const name of this.statuses.keys()) this.statuses.set(name, status);
    this.notify();
  }

  set(service: string, status: ServingStatus): void {
    this.statuses.set(service, status);
    this.notify();
  }

  /** Calls `listener` after every change; the returned function unsubscribes. */
  onChange(listener: () => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  private notify(): void {
    for (const listener of [...this.listeners]) listener();
  }
}

export function createHealthService(state: HealthState): ServiceImpl<typeof Health> {
  return {
    check(req: HealthCheckRequest) {
      const status = state.get(req.service);
      if (status === undefined) {
        throw new ConnectError(`unknown service ${quoted(req.service)}`, Code.NotFound);
      }
      return { status };
    },

    async *watch(req: HealthCheckRequest, ctx: HandlerContext) {
      // Per the health protocol, an unknown service is reported as SERVICE_UNKNOWN, not an error,
      // and the stream stays open in case it appears.
      const current = () => state.get(req.service) ?? ServingStatus.SERVICE_UNKNOWN;
      let changed: (() => void) | undefined;
      const unsubscribe = state.onChange(() => changed?.());
      try {
        let last: ServingStatus | undefined;
        for (;;) {
          // Compare before waiting: a change may have happened while the client was slow.
          const next = current();
          if (next !== last) {
            last = next;
            yield { status: next };
            continue;
          }
          await new Promise<void>((resolve, reject) => {
            if (ctx.signal.aborted) return reject(ctx.signal.reason);
            const onAbort = () => reject(ctx.signal.reason);
            ctx.signal.addEventListener("abort", onAbort, { once: true });
            changed = () => {
              changed = undefined;
              ctx.signal.removeEventListener("abort", onAbort);
              resolve();
            };
          });
        }
      } finally {
        unsubscribe();
      }
    },
  };
}
