/**
 * `GET /healthz`: the server's health for HTTP load balancers and Kubernetes `httpGet` probes,
 * which cannot speak gRPC. It reads the same state as grpc.health.v1.Health's service "": 200
 * while SERVING, 503 while starting or shutting down. It needs no token, like gRPC health.
 * Liveness and readiness are the same question here (one process, no dependency to wait for), so
 * there is one path for both probes.
 */
import type { HealthState } from "../transport/health";
import { ServingStatus } from "../transport/health";
import type { RequestHandler } from "./listener";

export function healthzRoute(health: HealthState): RequestHandler {
  return (req, res) => {
    if (req.method !== "GET" && req.method !== "HEAD") {
      res.writeHead(405, { allow: "GET, HEAD" });
      res.end();
      return;
    }
    const status = health.get("") ?? ServingStatus.NOT_SERVING;
    const serving = status === ServingStatus.SERVING;
    const body = `${ServingStatus[status]}\n`;
    res.writeHead(serving ? 200 : 503, {
      "content-type": "text/plain; charset=utf-8",
      "content-length": Buffer.byteLength(body),
      "cache-control": "no-store",
    });
    if (req.method === "HEAD") res.end();
    else res.end(body);
  };
}
