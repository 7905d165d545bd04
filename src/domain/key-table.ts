import { quoted } from "./echo";
import { notFound, type PoolError } from "./errors";
import type { KeyEntry } from "./key-entry";
import { KeyOrder } from "./key-order";
import { SelectionIndex } from "./selection-index";

const KEY_HASH_SHAPE = /^[a-z]{1,16}-[0-9a-f]{1,64}$/;

/**
 * The pool's keys by hash, the selection index of the ACTIVE ones, and the keys' key_hash order
 * for listings that page. Keys enter and leave through put() and drop() only, so that `order`
 * always follows `byHash`.
 */
export class KeyTable {
  private readonly entries = new Map<string, KeyEntry>();
  readonly index = new SelectionIndex<KeyEntry>();
  readonly order = new KeyOrder(() => this.entries.keys());
  private adminStamps = 0;

  get byHash(): ReadonlyMap<string, KeyEntry> {
    return this.entries;
  }

  get size(): number {
    return this.entries.size;
  }

  /** Adds a key, or replaces the entry of a key already here. */
  put(entry: KeyEntry): void {
    if (!this.entries.has(entry.keyHash)) this.order.invalidate();
    this.entries.set(entry.keyHash, entry);
  }

  /** Takes a key out of the table (not out of the selection index: the caller does that first). */
  drop(keyHash: string): void {
    if (this.entries.delete(keyHash)) this.order.invalidate();
  }

  /** A stamp no key has had yet, for an operator's action on a key (KeyEntry.adminStamp). */
  nextAdminStamp(): number {
    return ++this.adminStamps;
  }

  /** The key with this hash, or NotFound. */
  mustGet(keyHash: string): KeyEntry {
    const entry = typeof keyHash === "string" ? this.byHash.get(keyHash) : undefined;
    if (!entry) throw keyNotFound(keyHash);
    return entry;
  }
}

/** NotFound for a key hash no key has. */
export function keyNotFound(keyHash: string): PoolError {
  // A client that sends the key itself by mistake must not see it echoed into errors and logs:
  // only a value shaped like a key hash is quoted.
  if (typeof keyHash === "string" && KEY_HASH_SHAPE.test(keyHash)) {
    return notFound(`no key with hash ${quoted(keyHash)} is in the pool`);
  }
  return notFound("no key with that hash is in the pool (the value is not shown: it is not shaped like a key hash, e.g. oai-0123456789abcdef)");
}
