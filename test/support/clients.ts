/**
 * Clients for end-to-end tests: connect-node clients over each protocol, and an independent
 * @grpc/grpc-js client built from the .proto files with @grpc/proto-loader (it shares no code
 * with the server).
 */
import * as path from "node:path";
import * as grpc from "@grpc/grpc-js";
import * as protoLoader from "@grpc/proto-loader";
import type { DescService } from "@bufbuild/protobuf";
import { createClient, type Client, type Transport } from "@connectrpc/connect";
import {
  createConnectTransport,
  createGrpcTransport,
  createGrpcWebTransport,
} from "@connectrpc/connect-node";

export type ProtocolName = "grpc" | "grpc-web" | "connect";

export const PROTO_ROOT = path.resolve(__dirname, "../../proto");

export function createTransport(
  baseUrl: string,
  protocol: ProtocolName,
  httpVersion: "1.1" | "2" = "2",
  nodeOptions?: { ca?: string | Buffer; rejectUnauthorized?: boolean },
): Transport {
  switch (protocol) {
    case "grpc":
      return createGrpcTransport({ baseUrl, nodeOptions });
    case "grpc-web":
      return httpVersion === "2"
        ? createGrpcWebTransport({ baseUrl, httpVersion, nodeOptions })
        : createGrpcWebTransport({ baseUrl, httpVersion, nodeOptions });
    case "connect":
      return httpVersion === "2"
        ? createConnectTransport({ baseUrl, httpVersion, nodeOptions })
        : createConnectTransport({ baseUrl, httpVersion, nodeOptions });
  }
}

export function connectClient<S extends DescService>(
  service: S,
  baseUrl: string,
  protocol: ProtocolName = "grpc",
  httpVersion: "1.1" | "2" = "2",
): Client<S> {
  return createClient(service, createTransport(baseUrl, protocol, httpVersion));
}

/** grpc-js client constructors for every service, loaded from proto/ at run time. */
export interface GrpcJsPackage {
  KeyPoolService: grpc.ServiceClientConstructor;
  KeyAdminService: grpc.ServiceClientConstructor;
  Health: grpc.ServiceClientConstructor;
}

export function loadGrpcJsPackage(): GrpcJsPackage {
  const definition = protoLoader.loadSync(
    ["keypool/v1/keypool.proto", "grpc/health/v1/health.proto"],
    { includeDirs: [PROTO_ROOT], keepCase: false, longs: String, enums: String, defaults: true, oneofs: true },
  );
  const loaded = grpc.loadPackageDefinition(definition) as unknown as {
    keypool: { v1: { KeyPoolService: grpc.ServiceClientConstructor; KeyAdminService: grpc.ServiceClientConstructor } };
    grpc: { health: { v1: { Health: grpc.ServiceClientConstructor } } };
  };
  return {
    KeyPoolService: loaded.keypool.v1.KeyPoolService,
    KeyAdminService: loaded.keypool.v1.KeyAdminService,
    Health: loaded.grpc.health.v1.Health,
  };
}

/** Calls a unary grpc-js method; resolves with the response or rejects with the ServiceError. */
export function grpcJsUnary<Res = Record<string, unknown>>(
  client: grpc.Client,
  method: string,
  request: object,
  options: { metadata?: grpc.Metadata; deadlineMs?: number } = {},
): Promise<Res> {
  return new Promise((resolve, reject) => {
    const call = (client as unknown as Record<string, (...args: unknown[]) => unknown>)[method].bind(client);
    const callOptions: grpc.CallOptions = {};
    if (options.deadlineMs !== undefined) callOptions.deadline = Date.now() + options.deadlineMs;
    call(request, options.metadata ?? new grpc.Metadata(), callOptions, (err: grpc.ServiceError | null, res: Res) =>
      err ? reject(err) : resolve(res),
    );
  });
}

export function grpcJsClient(ctor: grpc.ServiceClientConstructor, port: number): grpc.Client {
  return new ctor(`127.0.0.1:${port}`, grpc.credentials.createInsecure());
}
