import type { Clock, Timer } from "../domain/clock";
import type { KeyFilter } from "../domain/key-filter";
import { SlotBits } from "./slot-bits";
import type { SharedWindow, WatchSubscription } from "./watch-subscription";

export interface WatchGroupContext {
  clock: Clock;
  /** The window's length (more than 0: without windows there is nothing to share). */
  coalesceMs: number;
  /** Asks for `subscription.wake()` after the pool's turn (the hub's batched waking). */
  wakeSoon: (subscription: WatchSubscription) => void;
  /**
   * Starts the hub's waking of what wakeSoon queued at once (its first batch now, the rest a batch
   * per turn as before): the window's timer is no call's turn, so there is nothing to answer
   * first.
   */
  wakeNow: () => void;
}

/**
 * The batched watches of one filter, on one coalescing window. A change to a key is offered to the
 * group once, not to each of its watches: it sets one bit in the group's `open` set, whatever the
 * number of watches. When the window ends, the set closes (the keys due in that window) and every
 * watch takes it when its consumer next pulls, reading each key's latest status then, as an
 * ungrouped watch does: a watch that owes exactly that set sends the set's list, made once for
 * the group (SharedBatch in src/watch/watch-subscription.ts); any other takes the set into its own
 * bits.
 *
 * The window follows the rule of one batched watch (docs/watching.md): the first change after a
 * quiet window closes at once (when the first watch pulls, so that the changes of the same turn go
 * together) and opens a window; the changes within it close together when it ends, which opens the
 * next; a window that ends with nothing due leaves the group quiet. A saturated server's change
 * waits for the end of the window it opens. Only two sets are kept: a watch that has not taken the
 * latest closed set when the next one closes (its client is not reading, or it is still sending
 * its snapshot) gets that set into its own bits then, so nothing is lost and what it holds stays a
 * few bits per key; it sends its own bits and the group's next set together.
 */
export class WatchGroup {
  readonly members = new Set<WatchSubscription>();
  /** Keys changed since the last set closed. */
  private open = new SlotBits();
  /** The keys of the latest closed window, and its number. */
  private closed = new SlotBits();
  private generation = 0;
  /** A leading change waits for the first watch that pulls to close the set. */
  private closePending = false;
  private timer: Timer | null = null;
  /** Hub bookkeeping: the last change this group saw, so it is visited once per change. */
  visitStamp = 0;
  /** What a member reads from this group: its sets, and sync() to close a pending set first. */
  readonly window: SharedWindow = {
    sync: () => {
      if (!this.closePending) return;
      this.closePending = false;
      this.close(this.context.clock.now());
    },
    generation: () => this.generation,
    closed: () => this.closed,
    open: () => this.open,
    batch: null,
  };

  constructor(
    readonly filter: KeyFilter,
    private readonly context: WatchGroupContext,
  ) {}

  get hasTimer(): boolean {
    return this.timer !== null;
  }

  /** A key matching the filter (before or after its change) changed: O(1) for all the watches. */
  offer(slot: number, leading: boolean, now: number): void {
    if (!this.open.add(slot)) return;
    if (this.timer !== null || this.closePending) return;
    if (leading) {
      this.closePending = true;
      this.wakeWaiting();
    } else {
      this.arm(now + this.context.coalesceMs);
    }
  }

  /**
   * Hands every member what it is owed into its own bits and empties the group's sets: the hub
   * does this before reclaiming removed keys' slots, so that only the watches refer to them.
   */
  spill(): void {
    for (const member of this.members) member.takeShared(this.generation, this.closed, this.open);
    this.open = new SlotBits();
    this.closed = new SlotBits();
    this.window.batch = null;
    this.closePending = false;
  }

  leave(member: WatchSubscription): void {
    this.members.delete(member);
    if (this.members.size === 0) this.dispose();
  }

  dispose(): void {
    this.timer?.cancel();
    this.timer = null;
    this.closePending = false;
    this.open = new SlotBits();
    this.closed = new SlotBits();
    this.window.batch = null;
  }

  private close(now: number): void {
    // Members that did not take the set closing now get it into their own bits first.
    for (const member of this.members) member.takeShared(this.generation, this.closed, null);
    this.closed = this.open;
    this.open = new SlotBits();
    this.window.batch = null;
    this.generation++;
    this.arm(now + this.context.coalesceMs);
  }

  private arm(endsAt: number): void {
    this.timer = this.context.clock.setTimer(Math.max(0, endsAt - this.context.clock.now()), () => {
      this.timer = null;
      if (this.open.size === 0) return; // a quiet window: the next change goes out at once
      this.close(this.context.clock.now());
      this.wakeWaiting();
      this.context.wakeNow();
    });
  }

  private wakeWaiting(): void {
    for (const member of this.members) if (member.waiting) this.context.wakeSoon(member);
  }
}
