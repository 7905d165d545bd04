/**
 * The vocabulary between the pool and the key checker (src/checker, docs/checker.md): what the
 * checker is given to check a key, and what it found. The pool applies a finding as one change,
 * so that storage, WatchKeys and logs see it like any other.
 */
import type { ProviderId } from "./types";

/** One key as the checker sees it at the start of a check. */
export interface CheckSubject {
  readonly keyHash: string;
  readonly provider: ProviderId;
  /** The secret, sent upstream and nowhere else. */
  readonly secret: string;
  /** The organization the key is bound to ("" when none): sent as OpenAI-Organization. */
  readonly organizationId: string;
  readonly trial: boolean;
  /** The operator named the families: a finding's families are not applied. */
  readonly familiesPinned: boolean;
  /** Never checked (or marked by RecheckKeys): the first check asks for models and organizations too. */
  readonly firstCheck: boolean;
  /** The key's admin stamp when the check started; a finding under another stamp is dropped. */
  readonly adminStamp: number;
}

/** What a completed check found. Absent fields leave the key as it is. */
export interface KeyFinding {
  /**
   * "active": the check proved the key works (a REVOKED or OVER_QUOTA key comes back);
   * "revoked" / "over_quota": the upstream said so; absent: the state stays.
   */
  state?: "active" | "revoked" | "over_quota";
  /** Why, in words, for a state other than active. Never contains the secret. */
  reason?: string;
  /** The families the upstream says the key serves (ignored for pinned keys; never empty). */
  modelFamilies?: string[];
  trial?: boolean;
  /** The organization to bind the key to (only a key bound to none is bound). */
  organizationId?: string;
  /** Other organizations of the key: each becomes a clone bound to it (only for an unbound key). */
  cloneOrganizations?: string[];
}

/** What the pool did with a finding. */
export type FindingResult =
  | { applied: true; clones: string[] }
  | { applied: false; why: "removed" | "disabled" | "operator_changed" };
