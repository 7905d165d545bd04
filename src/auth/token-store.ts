import { createHash, timingSafeEqual } from "node:crypto";
import type { Role } from "./roles";

/** One configured bearer token, as read from configuration. */
export interface TokenEntry {
  role: Role;
  token: string;
}

interface StoredToken {
  digest: Buffer;
  role: Role;
}

const sha256 = (value: string): Buffer => createHash("sha256").update(value, "utf8").digest();

/**
 * The configured tokens, kept only as SHA-256 digests. A presented token is hashed too and
 * compared with every stored digest by timingSafeEqual, without stopping at a match: the time
 * taken depends neither on how much of a token was right, nor on its length, nor on which
 * token matched.
 */
export class TokenStore {
  private readonly tokens: StoredToken[];

  constructor(entries: readonly TokenEntry[]) {
    this.tokens = entries.map((e) => ({ digest: sha256(e.token), role: e.role }));
  }

  /** True when at least one token is configured, i.e. when calls must authenticate. */
  get enabled(): boolean {
    return this.tokens.length > 0;
  }

  get size(): number {
    return this.tokens.length;
  }

  /** The role of a presented token, or undefined when it matches none. */
  roleOf(presented: string): Role | undefined {
    const digest = sha256(presented);
    let found: Role | undefined;
    for (const stored of this.tokens) {
      // No short-circuit: every digest is compared whatever happened before.
      const same = timingSafeEqual(stored.digest, digest);
      if (same && found === undefined) found = stored.role;
    }
    return found;
  }
}
