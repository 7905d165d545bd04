/**
 * Every service the server mounts, assembled in one place. Other parts plug in here without
 * touching the listener: the watch hub through `watchKeys`, storage through `durability`, access
 * control through `interceptors` (see start-server.ts), metrics through `metrics`. The plain HTTP
 * routes of the main port (/healthz, the dashboard, /metrics) are listed here too (createHttpRoutes).
 */
import type { DescService } from "@bufbuild/protobuf";
import type { ConnectRouter, ServiceImpl } from "@connectrpc/connect";
import { Health, file_grpc_health_v1_health } from "../../gen/ts/grpc/health/v1/health_pb";
import {
  ServerReflection as ServerReflectionV1,
  file_grpc_reflection_v1_reflection,
} from "../../gen/ts/grpc/reflection/v1/reflection_pb";
import {
  ServerReflection as ServerReflectionV1Alpha,
  file_grpc_reflection_v1alpha_reflection,
} from "../../gen/ts/grpc/reflection/v1alpha/reflection_pb";
import { file_google_rpc_error_details } from "../../gen/ts/google/rpc/error_details_pb";
import {
  KeyAdminService,
  KeyPoolService,
  file_keypool_v1_keypool,
} from "../../gen/ts/keypool/v1/keypool_pb";
import { createHealthService, type HealthState } from "../transport/health";
import { healthzRoute } from "./healthz";
import type { RequestHandler } from "./listener";
import { createKeyAdminService } from "../transport/key-admin-service";
import { createKeyPoolService, type WatchKeysImpl } from "../transport/key-pool-service";
import type { Durability, PoolApi } from "../domain/pool-api";
import type { TokenStore } from "../auth/token-store";
import type { Logger } from "../log";
import { instrumentService } from "../metrics/instrumented-service";
import { createMetricsEndpoint } from "../metrics/metrics-endpoint";
import type { KeypoolMetrics } from "../metrics/metrics";
import { dashboardRoutes } from "./dashboard-files";
import {
  DescriptorIndex,
  createReflectionV1AlphaService,
  createReflectionV1Service,
} from "../transport/reflection";

/** The services whose health is reported, besides "" (the whole server). */
export const APPLICATION_SERVICES: DescService[] = [KeyPoolService, KeyAdminService];

/** Every service mounted, in the order reflection lists them. */
export const MOUNTED_SERVICES: DescService[] = [
  KeyPoolService,
  KeyAdminService,
  Health,
  ServerReflectionV1,
  ServerReflectionV1Alpha,
];

export interface RouteDeps {
  pool: PoolApi;
  health: HealthState;
  /** Awaited before acknowledging changes (storage); default: nothing to wait for. */
  durability?: Durability;
  /** WatchKeys (the watch hub); default: UNIMPLEMENTED. */
  watchKeys?: WatchKeysImpl;
  /** Times the unary RPCs of the keypool.v1 services; absent: nothing is measured. */
  metrics?: KeypoolMetrics;
}

export function createDescriptorIndex(): DescriptorIndex {
  return new DescriptorIndex(
    [
      file_keypool_v1_keypool,
      file_google_rpc_error_details,
      file_grpc_health_v1_health,
      file_grpc_reflection_v1_reflection,
      file_grpc_reflection_v1alpha_reflection,
    ],
    MOUNTED_SERVICES.map((s) => s.typeName),
  );
}

/** One service and its implementation, as every server stack mounts it. */
export interface MountedService {
  service: DescService;
  // The implementation's type follows its service; the stacks only need it as a whole.
  impl: Partial<ServiceImpl<any>>;
}

/**
 * Every service implementation, created once per server: the connect router (main port) and the
 * grpc-js adapter (native port, src/server/grpc-js-adapter.ts) mount these same objects, so both
 * ports share one health state, one watch hub and one set of handlers.
 */
export function createServiceImpls(deps: RouteDeps): MountedService[] {
  const index = createDescriptorIndex();
  let poolService = createKeyPoolService({ pool: deps.pool, durability: deps.durability, watchKeys: deps.watchKeys });
  let adminService = createKeyAdminService({ pool: deps.pool, durability: deps.durability });
  if (deps.metrics) {
    // Timed here, in the implementations both ports mount, so both feed the same histogram.
    poolService = instrumentService(KeyPoolService, poolService, deps.metrics);
    adminService = instrumentService(KeyAdminService, adminService, deps.metrics);
  }
  return [
    { service: KeyPoolService, impl: poolService },
    { service: KeyAdminService, impl: adminService },
    { service: Health, impl: createHealthService(deps.health) },
    { service: ServerReflectionV1, impl: createReflectionV1Service(index) },
    { service: ServerReflectionV1Alpha, impl: createReflectionV1AlphaService(index) },
  ];
}

/** Mounts the given implementations on a connect router. */
export function routesOf(services: MountedService[]): (router: ConnectRouter) => void {
  return (router) => {
    for (const { service, impl } of services) router.service(service, impl);
  };
}

export interface HttpRouteDeps {
  /** GET /healthz reads the same state as grpc.health.v1.Health. */
  health: HealthState;
  logger: Logger;
  /** GET /metrics; absent: no such route. */
  metrics?: KeypoolMetrics;
  /** The configured tokens: /metrics needs the watch or admin role when there are any. */
  tokens?: TokenStore;
}

/**
 * The main port's plain HTTP routes, by exact path, outside the RPC interceptors (no request log):
 * GET /healthz (no token, for load balancers and probes), GET / and its assets (the dashboard,
 * which needs no token itself: its RPCs do), and GET /metrics.
 */
export function createHttpRoutes(deps: HttpRouteDeps): Map<string, RequestHandler> {
  const routes = new Map<string, RequestHandler>(dashboardRoutes());
  routes.set("/healthz", healthzRoute(deps.health));
  if (deps.metrics) routes.set("/metrics", createMetricsEndpoint({ metrics: deps.metrics, tokens: deps.tokens, logger: deps.logger }));
  return routes;
}
