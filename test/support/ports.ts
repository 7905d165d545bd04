/**
 * The two ports a keypool server listens on: the main port (connect-node: gRPC, gRPC-Web and
 * Connect) and the native gRPC port (grpc-js, KEYPOOL_GRPC_PORT). Suites that speak gRPC run once
 * per port with `describe.each(PORTS)`, and pick the address with these helpers.
 */
export type PortName = "main" | "native";

export const PORTS: PortName[] = ["main", "native"];

interface TwoPorts {
  url: string;
  port: number;
  grpcUrl?: string;
  grpcPort?: number;
}

/** The base URL of `port` (http:// or https://). */
export function urlOf(server: TwoPorts, port: PortName): string {
  if (port === "main") return server.url;
  if (server.grpcUrl === undefined) throw new Error("this server was started without its native gRPC port");
  return server.grpcUrl;
}

/** The port number of `port`. */
export function portOf(server: TwoPorts, port: PortName): number {
  if (port === "main") return server.port;
  if (server.grpcPort === undefined) throw new Error("this server was started without its native gRPC port");
  return server.grpcPort;
}
