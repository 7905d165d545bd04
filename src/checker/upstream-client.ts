/**
 * The thin HTTP side of a check: Node's own fetch, a timeout through AbortSignal, a bounded body.
 * It knows nothing of what answers mean (openai-check.ts, anthropic-check.ts do).
 */
import type { UpstreamAnswer } from "./upstream-answer";
import type { UpstreamRequest } from "./upstream-request";

/** Bodies past this are cut off and read as not JSON (a models list is a few hundred KiB at most). */
export const MAX_BODY_BYTES = 4 * 1024 * 1024;

export async function sendUpstream(request: UpstreamRequest, timeoutMs: number, cancel: AbortSignal): Promise<UpstreamAnswer> {
  const timeout = AbortSignal.timeout(timeoutMs);
  const signal = AbortSignal.any([timeout, cancel]);
  try {
    const response = await fetch(request.url, {
      method: request.method,
      headers: request.headers,
      body: request.body,
      signal,
      redirect: "error",
    });
    const headers: Record<string, string> = {};
    response.headers.forEach((value, name) => (headers[name.toLowerCase()] = value));
    const text = await readBounded(response);
    return { kind: "response", status: response.status, headers, body: parseJson(text) };
  } catch {
    // The error may name the URL, never the key; it is not passed on either way.
    return { kind: "failed", why: timeout.aborted ? "timeout" : "network" };
  }
}

async function readBounded(response: Response): Promise<string | undefined> {
  if (!response.body) return "";
  const reader = response.body.getReader();
  const chunks: Uint8Array[] = [];
  let size = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    size += value.byteLength;
    if (size > MAX_BODY_BYTES) {
      await reader.cancel();
      return undefined;
    }
    chunks.push(value);
  }
  return Buffer.concat(chunks).toString("utf8");
}

function parseJson(text: string | undefined): unknown {
  if (text === undefined || text === "") return undefined;
  try {
    return JSON.parse(text) as unknown;
  } catch {
    return undefined;
  }
}
