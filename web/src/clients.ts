/**
 * The generated keypool.v1 clients over the Connect protocol (binary), from this page's origin,
 * through @connectrpc/connect-web. Every call carries the session's token, if any.
 */
import { createClient, type Interceptor } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-web";
import { KeyAdminService, KeyPoolService } from "../../gen/ts/keypool/v1/keypool_pb";
import { session } from "./session";

const withToken: Interceptor = (next) => (req) => {
  const token = session.token;
  if (token) req.header.set("authorization", `Bearer ${token}`);
  return next(req);
};

const transport = createConnectTransport({
  baseUrl: location.origin,
  useBinaryFormat: true,
  interceptors: [withToken],
});

export const poolClient = createClient(KeyPoolService, transport);
export const adminClient = createClient(KeyAdminService, transport);

/** The watcher count from /metrics (same token rule as the RPCs); undefined when unreadable. */
export async function fetchWatcherCount(): Promise<number | undefined> {
  const token = session.token;
  const res = await fetch("/metrics", { headers: token ? { authorization: `Bearer ${token}` } : {} });
  if (!res.ok) return undefined;
  const match = /^keypool_watchers (\d+)$/m.exec(await res.text());
  return match ? Number(match[1]) : undefined;
}
