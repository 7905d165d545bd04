/**
 * GET / and its assets: the web dashboard that `npm run build` bundles into dist/web
 * (scripts/build-dashboard.mjs). The files are read once at start and kept with their gzip form.
 * Every answer carries a strict Content-Security-Policy: scripts, styles and calls only from this
 * origin, no inline script or style, no frames; the page needs nothing else.
 */
import { createHash } from "node:crypto";
import * as fs from "node:fs";
import type { IncomingMessage, ServerResponse } from "node:http";
import type { Http2ServerRequest, Http2ServerResponse } from "node:http2";
import * as path from "node:path";
import { gzipSync } from "node:zlib";

type Request = IncomingMessage | Http2ServerRequest;
type Response = ServerResponse | Http2ServerResponse;
export type HttpHandler = (req: Request, res: Response) => void;

export const DASHBOARD_CSP = [
  "default-src 'none'",
  "script-src 'self'",
  "style-src 'self'",
  "img-src 'self' data:",
  "connect-src 'self'",
  "base-uri 'none'",
  "form-action 'none'",
  "frame-ancestors 'none'",
].join("; ");

const SECURITY_HEADERS = {
  "content-security-policy": DASHBOARD_CSP,
  "x-content-type-options": "nosniff",
  "referrer-policy": "no-referrer",
  "x-frame-options": "DENY",
};

const TYPES: Record<string, string> = {
  ".html": "text/html; charset=utf-8",
  ".js": "text/javascript; charset=utf-8",
  ".css": "text/css; charset=utf-8",
  ".svg": "image/svg+xml",
  ".png": "image/png",
};

/** The two places a build leaves the page: next to the compiled server, or dist/ of the source tree. */
export function findDashboardDir(): string | undefined {
  const candidates = [path.resolve(__dirname, "../../web"), path.resolve(__dirname, "../../dist/web")];
  return candidates.find((dir) => fs.existsSync(path.join(dir, "index.html")) && fs.existsSync(path.join(dir, "app.js")));
}

interface StaticFile {
  type: string;
  body: Buffer;
  gzip: Buffer;
  etag: string;
}

/** URL path → handler, for every file of the built dashboard; "/" is index.html. */
export function dashboardRoutes(dir: string | undefined = findDashboardDir()): Map<string, HttpHandler> {
  const routes = new Map<string, HttpHandler>();
  if (!dir) {
    // A server built without the page still says what is missing instead of a bare 404.
    routes.set("/", (_req, res) => {
      res.writeHead(503, { "content-type": "text/plain; charset=utf-8", ...SECURITY_HEADERS });
      res.end("the dashboard is not built: run `npm run build`\n");
    });
    return routes;
  }
  for (const name of fs.readdirSync(dir)) {
    const type = TYPES[path.extname(name)];
    if (!type) continue;
    const body = fs.readFileSync(path.join(dir, name));
    const file: StaticFile = {
      type,
      body,
      gzip: gzipSync(body, { level: 9 }),
      etag: `"${createHash("sha256").update(body).digest("base64url").slice(0, 22)}"`,
    };
    const handler = serveFile(file);
    routes.set(`/${name}`, handler);
    if (name === "index.html") routes.set("/", handler);
  }
  return routes;
}

function serveFile(file: StaticFile): HttpHandler {
  return (req, res) => {
    if (req.method !== "GET" && req.method !== "HEAD") {
      res.writeHead(405, { allow: "GET, HEAD", ...SECURITY_HEADERS });
      res.end();
      return;
    }
    const headers: Record<string, string> = {
      "content-type": file.type,
      // Revalidated on every load: a new build is seen at once, an unchanged one costs a 304.
      "cache-control": "no-cache",
      etag: file.etag,
      vary: "accept-encoding",
      ...SECURITY_HEADERS,
    };
    if (req.headers["if-none-match"] === file.etag) {
      res.writeHead(304, headers);
      res.end();
      return;
    }
    const gzip = /\bgzip\b/.test(String(req.headers["accept-encoding"] ?? ""));
    const body = gzip ? file.gzip : file.body;
    if (gzip) headers["content-encoding"] = "gzip";
    headers["content-length"] = String(body.length);
    res.writeHead(200, headers);
    res.end(req.method === "HEAD" ? "" : body);
  };
}
