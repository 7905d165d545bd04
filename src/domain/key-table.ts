import { quoted } from "./echo";
import { notFound } from "./errors";
import type { KeyEntry } from "./key-entry";
import { KeyOrder } from "./key-order";
import { SelectionIndex } from "./selection-index";

const KEY_HASH_SHAPE = /^[a-z]{1,16}-[0-9a-f]{1,64}$/;

/**
 * The pool's keys by hash, the selection index of the ACTIVE ones, and the keys' key_hash order
 * for listings that page. They always change together (key-changes.ts, key-administration.ts), so
 * they live together: whoever adds or removes a key in `byHash` invalidates `order`.
 */
export class KeyTable {
  readonly byHash = new Map<string, KeyEntry>();
  readonly index = new SelectionIndex<KeyEntry>();
  readonly order = new KeyOrder(() => this.byHash.keys());

  get size(): number {
    return this.byHash.size;
  }

  /** The key with this hash, or NotFound. */
  mustGet(keyHash: string): KeyEntry {
    const entry = typeof keyHash === "string" ? this.byHash.get(keyHash) : undefined;
    if (!entry) {
      // A client that sends the key itself by mistake must not see it echoed into errors and
      // logs: only a value shaped like a key hash is quoted.
      if (typeof keyHash === "string" && KEY_HASH_SHAPE.test(keyHash)) {
        throw notFound(`no key with hash ${quoted(keyHash)} is in the pool`);
      }
      throw notFound("no key with that hash is in the pool (the value is not shown: it is not shaped like a key hash, e.g. oai-0123456789abcdef)");
    }
    return entry;
  }
}
