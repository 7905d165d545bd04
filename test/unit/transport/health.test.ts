import { create } from "@bufbuild/protobuf";
import { Code, ConnectError, type HandlerContext } from "@connectrpc/connect";
import { HealthCheckRequestSchema } from "../../../gen/ts/grpc/health/v1/health_pb";
import { createHealthService, HealthState, ServingStatus } from "../../../src/transport/health";

const ctxWith = (signal: AbortSignal) => ({ signal }) as unknown as HandlerContext;
const req = (service: string) => create(HealthCheckRequestSchema, { service });

describe("health", () => {
  it("starts NOT_SERVING for the server and each service", () => {
    const state = new HealthState(["a.A"]);
    expect(state.get("")).toBe(ServingStatus.NOT_SERVING);
    expect(state.get("a.A")).toBe(ServingStatus.NOT_SERVING);
    expect(state.get("b.B")).toBeUndefined();
  });

  it("Watch does not lose a change made while the client was slow", async () => {
    const state = new HealthState(["a.A"]);
    const abort = new AbortController();
    const watch = createHealthService(state).watch(req("a.A"), ctxWith(abort.signal)) as AsyncGenerator<{ status: ServingStatus }>;
    expect((await watch.next()).value.status).toBe(ServingStatus.NOT_SERVING);
    state.setAll(ServingStatus.SERVING); // before the client asks for the next message
    expect((await watch.next()).value.status).toBe(ServingStatus.SERVING);
    const next = watch.next();
    state.set("a.A", ServingStatus.NOT_SERVING);
    expect((await next).value.status).toBe(ServingStatus.NOT_SERVING);
    abort.abort(new ConnectError("bye", Code.Unavailable));
    await expect(watch.next()).rejects.toMatchObject({ code: Code.Unavailable });
  });

  it("Watch sends nothing when a change leaves the status as it was", async () => {
    const state = new HealthState([]);
    const abort = new AbortController();
    const watch = createHealthService(state).watch(req(""), ctxWith(abort.signal)) as AsyncGenerator<{ status: ServingStatus }>;
    await watch.next();
    const next = watch.next();
    state.setAll(ServingStatus.NOT_SERVING); // no change
    state.setAll(ServingStatus.SERVING);
    expect((await next).value.status).toBe(ServingStatus.SERVING);
    abort.abort(new ConnectError("bye", Code.Canceled));
    await expect(watch.next()).rejects.toMatchObject({ code: Code.Canceled });
  });
});
