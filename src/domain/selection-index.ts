import type { HeapNode } from "./indexed-heap";
import { InOrderQueue } from "./in-order-queue";
import type { ProviderId } from "./types";

/** What the index reads of a key, and where it files the key's nodes. */
export interface IndexedKey {
  readonly keyHash: string;
  readonly provider: ProviderId;
  readonly modelFamilies: readonly string[];
  readonly trial: boolean;
  /** Serves gpt4-32k: ranked after keys that do not, to keep the scarce keys free. */
  readonly has32k: boolean;
  /** hashSortRank(provider, keyHash): a cheap first comparison for the key_hash tie-break. */
  readonly hashRank: number;
  /** Always max(holdUntil, cooldownUntil). */
  readonly readyAt: number;
  readonly lastUsed: number;
  /** One node per selection sub-index this key sits in (empty unless ACTIVE). */
  nodes: readonly IndexNode[];
}

/** The nodes of a key in no sub-index: one shared empty list. */
export const NO_NODES: readonly IndexNode[] = Object.freeze([]);

/** A key's place in one sub-index: in its "ready" queue or its "waiting" queue. */
export interface IndexNode extends HeapNode {
  readonly entry: IndexedKey;
  readonly sub: SubIndex;
  inReady: boolean;
}

// The order among ready keys (docs/selection-and-leases.md, "The order among ready keys"; trial
// first is handled by keeping trial keys in their own sub-index): keys without gpt4-32k first,
// least recently leased first, then key_hash. The first two fold into one exact number
// (lastUsed < 2^52 ms, far past any date), key_hash breaks ties.
const SERVES_32K = 2 ** 52;
const readyPriority = (entry: IndexedKey) => (entry.has32k ? SERVES_32K : 0) + entry.lastUsed;
const hashBefore = (a: IndexNode, b: IndexNode) => {
  const x = a.entry;
  const y = b.entry;
  // Ranks order like the strings where both exist; NaN compares false both ways, so falls through.
  if (x.hashRank < y.hashRank) return true;
  if (x.hashRank > y.hashRank) return false;
  return x.keyHash < y.keyHash;
};

/**
 * The ACTIVE keys of one (provider, family, trial?) group: a queue of keys that are ready, in
 * lease order, and a queue of keys still waiting, by ready_at. Keys move from waiting to ready
 * lazily, when someone looks (promote), so time passing costs nothing until it matters. The
 * waiting queue needs no tie order: it only decides when a key moves, never which key is chosen.
 * Both are InOrderQueues: a Lease makes its key the newest in lease order and, with a reuse delay,
 * the last to be ready again, so the key joins the end of each queue's run.
 */
export class SubIndex {
  // Ties (equal priorities: all keys never leased) compare hash ranks in the queue's own arrays,
  // not through each node's entry.
  readonly ready = new InOrderQueue<IndexNode>(hashBefore, (node) => node.entry.hashRank);
  readonly waiting = new InOrderQueue<IndexNode>();

  get size(): number {
    return this.ready.size + this.waiting.size;
  }

  place(node: IndexNode, now: number): void {
    const entry = node.entry;
    node.inReady = entry.readyAt <= now;
    if (node.inReady) this.ready.push(node, readyPriority(entry));
    else this.waiting.push(node, entry.readyAt);
  }

  unplace(node: IndexNode): void {
    (node.inReady ? this.ready : this.waiting).remove(node);
  }

  /** After the key's readyAt or lastUsed changed: moves it, in place when it stays in its queue. */
  replace(node: IndexNode, now: number): void {
    const entry = node.entry;
    const ready = entry.readyAt <= now;
    if (ready === node.inReady) {
      if (ready) this.ready.update(node, readyPriority(entry));
      else this.waiting.update(node, entry.readyAt);
    } else {
      this.unplace(node);
      this.place(node, now);
    }
  }

  /** Moves every waiting key whose ready_at has come into the ready queue. */
  promote(now: number): void {
    while (this.waiting.peekPriority() <= now) {
      const node = this.waiting.pop()!;
      node.inReady = true;
      this.ready.push(node, readyPriority(node.entry));
    }
  }

  /** Earliest ready_at among waiting keys (call promote first), or undefined. */
  nextReadyAt(): number | undefined {
    return this.waiting.size > 0 ? this.waiting.peekPriority() : undefined;
  }
}

interface FamilyGroup {
  trial: SubIndex;
  regular: SubIndex;
  /** The sub-indexes a request searches, in order, made once rather than on every Lease. */
  forChat: readonly SubIndex[];
  forEmbedding: readonly SubIndex[];
}

/** A group of no keys' sub-indexes: none. */
const NO_SUBS: readonly SubIndex[] = Object.freeze([]);

/** What GetLockoutPeriod answers. */
export interface Lockout {
  lockoutMs: number;
  noActiveKeys: boolean;
}

/**
 * Every ACTIVE key, indexed per (provider, family) and trial-or-not. Lease and lockout read the
 * same queues, so they agree by construction. Each operation costs O(f log n) for a key serving
 * f families; nothing sorts the pool.
 */
export class SelectionIndex<K extends IndexedKey> {
  /** By provider, then family: finding a group joins no strings (a large start adds a key per family). */
  private readonly groups = new Map<ProviderId, Map<string, FamilyGroup>>();

  private group(provider: ProviderId, family: string, create: true): FamilyGroup;
  private group(provider: ProviderId, family: string, create: false): FamilyGroup | undefined;
  private group(provider: ProviderId, family: string, create: boolean): FamilyGroup | undefined {
    let families = this.groups.get(provider);
    if (!families) {
      if (!create) return undefined;
      this.groups.set(provider, (families = new Map()));
    }
    let g = families.get(family);
    if (!g && create) {
      const trial = new SubIndex();
      const regular = new SubIndex();
      g = { trial, regular, forChat: [trial, regular], forEmbedding: [regular] };
      families.set(family, g);
    }
    return g;
  }

  /** Indexes an ACTIVE key in each of its families. */
  add(entry: K, now: number): void {
    if (entry.nodes.length > 0) return;
    // Made at its final length: an array grown by push keeps spare room, paid for by every key.
    entry.nodes = entry.modelFamilies.map((family) => {
      const g = this.group(entry.provider, family, true);
      const sub = entry.trial ? g.trial : g.regular;
      const node: IndexNode = { entry, sub, inReady: false, heapPos: -1 };
      sub.place(node, now);
      return node;
    });
  }

  remove(entry: K): void {
    for (const node of entry.nodes) node.sub.unplace(node);
    entry.nodes = NO_NODES;
  }

  /** Re-positions a key after its readyAt or lastUsed changed. */
  reposition(entry: K, now: number): void {
    for (const node of entry.nodes) node.sub.replace(node, now);
  }

  private subs(provider: ProviderId, family: string, embedding: boolean): readonly SubIndex[] {
    const g = this.group(provider, family, false);
    if (!g) return NO_SUBS;
    // Embedding models never get trial keys; otherwise trial keys come first.
    return embedding ? g.forEmbedding : g.forChat;
  }

  /** Whether any ACTIVE key is eligible, ready or not. O(1). */
  hasEligible(provider: ProviderId, family: string, embedding: boolean): boolean {
    for (const sub of this.subs(provider, family, embedding)) if (sub.size > 0) return true;
    return false;
  }

  /** The key Lease would hand out now, or undefined when none is ready. Changes no key. */
  pick(provider: ProviderId, family: string, embedding: boolean, now: number): K | undefined {
    for (const sub of this.subs(provider, family, embedding)) {
      sub.promote(now);
      const top = sub.ready.peek();
      // Every node in this index was made by add() for a K.
      if (top) return top.entry as K;
    }
    return undefined;
  }

  lockout(provider: ProviderId, family: string, embedding: boolean, now: number): Lockout {
    let next = Infinity;
    let any = false;
    for (const sub of this.subs(provider, family, embedding)) {
      sub.promote(now);
      if (sub.size > 0) any = true;
      if (sub.ready.size > 0) return { lockoutMs: 0, noActiveKeys: false };
      const at = sub.nextReadyAt();
      if (at !== undefined && at < next) next = at;
    }
    if (!any) return { lockoutMs: 0, noActiveKeys: true };
    return { lockoutMs: Math.max(0, next - now), noActiveKeys: false };
  }
}
