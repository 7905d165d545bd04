/**
 * GET /metrics: the Prometheus text exposition. With tokens configured it obeys the same rule as
 * the dashboard's calls: a bearer token of the watch or admin role (Prometheus sends it through
 * `authorization: { credentials_file: ... }`). Answers never say which tokens exist.
 */
import type { IncomingMessage, ServerResponse } from "node:http";
import type { Http2ServerRequest, Http2ServerResponse } from "node:http2";
import { bearerToken } from "../auth/auth-interceptor";
import { METRICS_ROLES } from "../auth/roles";
import type { TokenStore } from "../auth/token-store";
import type { Logger } from "../log";
import type { KeypoolMetrics } from "./metrics";

type Request = IncomingMessage | Http2ServerRequest;
type Response = ServerResponse | Http2ServerResponse;

function plain(res: Response, status: number, text: string, headers: Record<string, string> = {}): void {
  res.writeHead(status, { "content-type": "text/plain; charset=utf-8", "cache-control": "no-store", ...headers });
  res.end(`${text}\n`);
}

export function createMetricsEndpoint(options: { metrics: KeypoolMetrics; tokens?: TokenStore; logger: Logger }) {
  const { metrics, tokens, logger } = options;
  return (req: Request, res: Response): void => {
    if (req.method !== "GET" && req.method !== "HEAD") {
      plain(res, 405, "use GET", { allow: "GET, HEAD" });
      return;
    }
    if (tokens?.enabled) {
      const presented = bearerToken(req.headers.authorization);
      const role = presented === undefined ? undefined : tokens.roleOf(presented);
      if (role === undefined) {
        plain(res, 401, "/metrics needs a bearer token of the watch or admin role: send 'authorization: Bearer <token>'", {
          "www-authenticate": 'Bearer realm="keypool"',
        });
        return;
      }
      if (!METRICS_ROLES.includes(role)) {
        plain(res, 403, `/metrics needs the ${METRICS_ROLES.join(" or ")} role; this token has the ${role} role`);
        return;
      }
    }
    metrics.scrape().then(
      (text) => {
        res.writeHead(200, { "content-type": metrics.contentType, "cache-control": "no-store" });
        res.end(req.method === "HEAD" ? "" : text);
      },
      (err: unknown) => {
        logger.error({ err: err instanceof Error ? err.message : String(err) }, "collecting metrics failed");
        plain(res, 500, "collecting metrics failed; the server log has the details");
      },
    );
  };
}
