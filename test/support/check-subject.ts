/**
 * What the key checker is given about a key (src/domain/key-check.ts), for tests: a key on its
 * first check, not pinned, no organization bound, with `extra` on top.
 */
import type { CheckSubject } from "../../src/domain/key-check";
import { hashKey } from "../../src/domain/key-hash";
import type { ProviderId } from "../../src/domain/types";

export function checkSubject(provider: ProviderId, secret: string, extra: Partial<CheckSubject> = {}): CheckSubject {
  return {
    keyHash: hashKey(provider, secret, ""),
    provider,
    secret,
    organizationId: "",
    trial: false,
    familiesPinned: false,
    firstCheck: true,
    adminStamp: 0,
    ...extra,
  };
}
