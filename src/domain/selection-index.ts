import { IndexedHeap, type HeapNode } from "./indexed-heap";
import type { KeyEntry } from "./key-entry";
import type { ProviderId } from "./types";

/** A key's place in one sub-index: in its "ready" heap or its "waiting" heap. */
export interface IndexNode extends HeapNode {
  readonly entry: KeyEntry;
  readonly sub: SubIndex;
  inReady: boolean;
}

// POLICY.md's order among ready keys (trial first is handled by keeping trial keys in their own
// sub-index): keys without gpt4-32k first, least recently leased first, then key_hash.
const readyOrder = (a: IndexNode, b: IndexNode): boolean => {
  const x = a.entry;
  const y = b.entry;
  if (x.has32k !== y.has32k) return !x.has32k;
  if (x.lastUsed !== y.lastUsed) return x.lastUsed < y.lastUsed;
  return x.keyHash < y.keyHash;
};

const waitingOrder = (a: IndexNode, b: IndexNode): boolean => {
  const x = a.entry;
  const y = b.entry;
  if (x.readyAt !== y.readyAt) return x.readyAt < y.readyAt;
  return x.keyHash < y.keyHash;
};

/**
 * The ACTIVE keys of one (provider, family, trial?) group: a heap of keys that are ready, in
 * lease order, and a heap of keys still waiting, by ready_at. Keys move from waiting to ready
 * lazily, when someone looks (promote), so time passing costs nothing until it matters.
 */
export class SubIndex {
  readonly ready = new IndexedHeap<IndexNode>(readyOrder);
  readonly waiting = new IndexedHeap<IndexNode>(waitingOrder);

  get size(): number {
    return this.ready.size + this.waiting.size;
  }

  place(node: IndexNode, now: number): void {
    node.inReady = node.entry.readyAt <= now;
    (node.inReady ? this.ready : this.waiting).push(node);
  }

  unplace(node: IndexNode): void {
    (node.inReady ? this.ready : this.waiting).remove(node);
  }

  /** Moves every waiting key whose ready_at has come into the ready heap. */
  promote(now: number): void {
    for (let top = this.waiting.peek(); top !== undefined && top.entry.readyAt <= now; top = this.waiting.peek()) {
      this.waiting.pop();
      top.inReady = true;
      this.ready.push(top);
    }
  }

  /** Earliest ready_at among waiting keys (call promote first), or undefined. */
  nextReadyAt(): number | undefined {
    return this.waiting.peek()?.entry.readyAt;
  }
}

interface FamilyGroup {
  trial: SubIndex;
  regular: SubIndex;
}

/** What GetLockoutPeriod answers. */
export interface Lockout {
  lockoutMs: number;
  noActiveKeys: boolean;
}

/**
 * Every ACTIVE key, indexed per (provider, family) and trial-or-not. Lease and lockout read the
 * same heaps, so they agree by construction. Each operation costs O(f log n) for a key serving
 * f families; nothing sorts the pool.
 */
export class SelectionIndex {
  private readonly groups = new Map<string, FamilyGroup>();

  private group(provider: ProviderId, family: string, create: true): FamilyGroup;
  private group(provider: ProviderId, family: string, create: false): FamilyGroup | undefined;
  private group(provider: ProviderId, family: string, create: boolean): FamilyGroup | undefined {
    const id = `${provider}/${family}`;
    let g = this.groups.get(id);
    if (!g && create) {
      g = { trial: new SubIndex(), regular: new SubIndex() };
      this.groups.set(id, g);
    }
    return g;
  }

  /** Indexes an ACTIVE key in each of its families. */
  add(entry: KeyEntry, now: number): void {
    if (entry.nodes.length > 0) return;
    for (const family of entry.modelFamilies) {
      const g = this.group(entry.provider, family, true);
      const sub = entry.trial ? g.trial : g.regular;
      const node: IndexNode = { entry, sub, inReady: false, heapPos: -1 };
      sub.place(node, now);
      entry.nodes.push(node);
    }
  }

  remove(entry: KeyEntry): void {
    for (const node of entry.nodes) node.sub.unplace(node);
    entry.nodes = [];
  }

  /** Re-positions a key after its readyAt or lastUsed changed. */
  reposition(entry: KeyEntry, now: number): void {
    for (const node of entry.nodes) {
      node.sub.unplace(node);
      node.sub.place(node, now);
    }
  }

  private subs(provider: ProviderId, family: string, embedding: boolean): SubIndex[] {
    const g = this.group(provider, family, false);
    if (!g) return [];
    // Embedding models never get trial keys; otherwise trial keys come first.
    return embedding ? [g.regular] : [g.trial, g.regular];
  }

  /** The key Lease would hand out now, or undefined when none is ready. Changes no key. */
  pick(provider: ProviderId, family: string, embedding: boolean, now: number): KeyEntry | undefined {
    for (const sub of this.subs(provider, family, embedding)) {
      sub.promote(now);
      const top = sub.ready.peek();
      if (top) return top.entry;
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
