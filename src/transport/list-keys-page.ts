/**
 * ListKeys pages (AIP-158). A page holds at most `page_size` keys and at most PAGE_BUDGET_BYTES of
 * encoded statuses, so that every response fits a standard gRPC client's 4 MiB receive limit
 * whatever the pool's size. Pages follow key_hash order and the token names the last hash sent:
 * the next page starts after it, so a key that stays in the pool appears exactly once however the
 * pool changes between pages, and a token never expires.
 */
import { createHash } from "node:crypto";
import { Code, ConnectError } from "@connectrpc/connect";
import type { KeyStatus as ProtoKeyStatus } from "../../gen/ts/keypool/v1/keypool_pb";
import type { KeyFilter } from "../domain/key-filter";
import type { MaybePromise } from "../domain/pool-api";
import type { KeyStatus } from "../domain/types";
import { keyStatusToProto } from "./convert";

/** Keys in a page when the request gives no page_size. */
export const DEFAULT_PAGE_SIZE = 1000;
/** Larger page_size values are lowered to this. */
export const MAX_PAGE_SIZE = 5000;
/** Encoded statuses in one page: well under 4 MiB, with room for the response around them. */
export const PAGE_BUDGET_BYTES = 3 * 1024 * 1024;
/** A token longer than this was not made here (ours are well under 200 bytes). */
const MAX_TOKEN_LENGTH = 1024;
const TOKEN_VERSION = 1;

/** What the page source must offer: the pool's keys after a hash, in key_hash order. */
export interface PagedKeys {
  keysAfter(after: string, filter?: KeyFilter): MaybePromise<Iterable<KeyStatus>>;
}

export interface KeysPage {
  keys: ProtoKeyStatus[];
  nextPageToken: string;
}

/** The page of keys a ListKeys request asks for. */
export async function listKeysPage(
  source: PagedKeys,
  filter: KeyFilter,
  request: { pageSize: number; pageToken: string },
): Promise<KeysPage> {
  const limit = pageLimit(request.pageSize);
  const fingerprint = filterFingerprint(filter);
  const after = request.pageToken === "" ? "" : decodeToken(request.pageToken, fingerprint);
  const keys: ProtoKeyStatus[] = [];
  let bytes = 0;
  let last = "";
  for (const status of await source.keysAfter(after, filter)) {
    const size = encodedSizeBound(status);
    if (keys.length === limit || (keys.length > 0 && bytes + size > PAGE_BUDGET_BYTES)) {
      return { keys, nextPageToken: encodeToken(last, fingerprint) };
    }
    keys.push(keyStatusToProto(status));
    bytes += size;
    last = status.keyHash;
  }
  return { keys, nextPageToken: "" };
}

/**
 * At least the size of the status as a repeated KeyStatus field, without encoding it: each string
 * at 3 bytes a character (UTF-8's most for a UTF-16 unit) plus its tag and length, and every
 * number, timestamp and usage entry at its largest encoding.
 */
export function encodedSizeBound(status: KeyStatus): number {
  const text = (value: string) => 3 * value.length + 6;
  let bytes = 6 + 200 + text(status.keyHash) + text(status.organizationId) + text(status.stateReason);
  for (const family of status.modelFamilies) bytes += text(family);
  for (const family of Object.keys(status.usage)) bytes += text(family) + 48;
  return bytes;
}

function pageLimit(pageSize: number): number {
  if (pageSize < 0) {
    throw new ConnectError(`page_size must be 0 (the default page of ${DEFAULT_PAGE_SIZE}) or more, got ${pageSize}`, Code.InvalidArgument);
  }
  if (pageSize === 0) return DEFAULT_PAGE_SIZE;
  return Math.min(pageSize, MAX_PAGE_SIZE);
}

/** Ties a token to the filter it was made for: a page of another listing would be wrong. */
function filterFingerprint(filter: KeyFilter): string {
  const families = [...new Set(filter.modelFamilies ?? [])].sort();
  return createHash("sha256")
    .update(JSON.stringify([filter.provider ?? "", families]))
    .digest("base64url")
    .slice(0, 12);
}

function encodeToken(after: string, fingerprint: string): string {
  return Buffer.from(JSON.stringify({ v: TOKEN_VERSION, a: after, f: fingerprint })).toString("base64url");
}

const BAD_TOKEN =
  "page_token is not a next_page_token this server returned (or it was altered); start again with an empty page_token";

function decodeToken(token: string, fingerprint: string): string {
  if (token.length > MAX_TOKEN_LENGTH || !/^[A-Za-z0-9_-]+$/.test(token)) {
    throw new ConnectError(BAD_TOKEN, Code.InvalidArgument);
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(Buffer.from(token, "base64url").toString("utf8"));
  } catch {
    throw new ConnectError(BAD_TOKEN, Code.InvalidArgument);
  }
  const fields = parsed as { v?: unknown; a?: unknown; f?: unknown } | null;
  if (!fields || fields.v !== TOKEN_VERSION || typeof fields.a !== "string" || fields.a === "" || typeof fields.f !== "string") {
    throw new ConnectError(BAD_TOKEN, Code.InvalidArgument);
  }
  if (fields.f !== fingerprint) {
    throw new ConnectError(
      "page_token belongs to a listing with another provider or model_families; send the same filter with it, or start again with an empty page_token",
      Code.InvalidArgument,
    );
  }
  return fields.a;
}
