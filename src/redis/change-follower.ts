/**
 * Follows the pool's change stream in Redis (XREAD BLOCK on a connection of its own, since a
 * blocked connection answers nothing else) and applies each entry to the replica's mirror. Every
 * entry carries its number; a number skipped means the stream was trimmed past what this replica
 * had read (it was away longer than the stream holds), and the mirror is reloaded from a snapshot
 * instead, its differences published as changes. Nothing is ever missed or applied twice.
 */
import type Redis from "ioredis";
import { StatusView } from "../domain/key-view";
import type { ChangeCause, PoolEvent, ProviderId } from "../domain/types";
import { statusFromPacked, type PackedStatus } from "./key-fields";
import type { PoolMirror } from "./pool-mirror";

/** How long one XREAD blocks before it asks again (a quiet pool costs one command per this). */
export const FOLLOW_BLOCK_MS = 5_000;
/** Entries read at most per XREAD: what one turn of the event loop applies. */
const FOLLOW_BATCH = 100;
/** The wait before reading again after Redis failed to answer. */
const RETRY_AFTER_FAILURE_MS = 500;

/** Where a snapshot was taken: the stream's last entry id and number at that instant. */
export interface StreamPosition {
  id: string;
  number: number;
}

export interface FollowerOptions {
  /** A connection used for nothing else. */
  reader: Redis;
  streamKey: string;
  mirror: PoolMirror;
  /** Loads the whole pool into the mirror; returns the stream position to follow from. */
  resnapshot(): Promise<StreamPosition>;
  /** After each batch of entries applied. */
  onApplied(events: readonly PoolEvent[]): void;
  /** Reading failed (Redis away) or works again. */
  onHealth?(following: boolean, error?: Error): void;
}

/** One stream entry's events, as the scripts encode them (pool-scripts.ts, emit and emitRemoved): a status comes packed. */
function decodeEvents(json: string): PoolEvent[] {
  const raw = JSON.parse(json) as unknown[][];
  const events: PoolEvent[] = [];
  for (const e of raw) {
    if (e[0] === "u") {
      events.push({ type: "updated", cause: e[1] as ChangeCause, key: new StatusView(statusFromPacked(e[2] as PackedStatus)) });
    } else if (e[0] === "r") {
      const families = e[3] as string;
      events.push({ type: "removed", keyHash: e[1] as string, provider: e[2] as ProviderId, modelFamilies: families === "" ? [] : families.split(",") });
    }
  }
  return events;
}

export class ChangeFollower {
  private lastId: string;
  private closed = false;
  private failing = false;
  private running: Promise<void> | undefined;
  private endPause: (() => void) | undefined;

  constructor(
    private readonly options: FollowerOptions,
    from: StreamPosition,
  ) {
    this.lastId = from.id;
  }

  /** Follows from `position` from now on (after the pool's owner reloaded the mirror). */
  restartFrom(position: StreamPosition): void {
    this.lastId = position.id;
  }

  start(): void {
    this.running ??= this.loop();
  }

  /** Stops reading; the reader connection is the caller's to close. */
  async close(): Promise<void> {
    this.closed = true;
    this.endPause?.();
    await this.running;
  }

  private async loop(): Promise<void> {
    const { reader, streamKey, mirror } = this.options;
    while (!this.closed) {
      let reply: [string, [string, string[]][]][] | null;
      try {
        reply = (await reader.xread("COUNT", FOLLOW_BATCH, "BLOCK", FOLLOW_BLOCK_MS, "STREAMS", streamKey, this.lastId)) as typeof reply;
        if (this.failing) {
          this.failing = false;
          this.options.onHealth?.(true);
        }
      } catch (error) {
        if (this.closed) return;
        if (!this.failing) {
          this.failing = true;
          this.options.onHealth?.(false, error as Error);
        }
        await this.pause(RETRY_AFTER_FAILURE_MS);
        continue;
      }
      if (this.closed || !reply) continue;
      const applied: PoolEvent[] = [];
      let gap = false;
      for (const [, entries] of reply) {
        for (const [id, fields] of entries) {
          const number = Number(fieldOf(fields, "n"));
          // Anything but the next number: entries were trimmed away unread, or Redis lost the pool
          // and began again (its numbers restart). Either way only a fresh snapshot is right.
          if (number !== mirror.applied + 1) {
            gap = true;
            break;
          }
          const events = decodeEvents(fieldOf(fields, "e") ?? "[]");
          for (const event of events) mirror.apply(event);
          applied.push(...events);
          this.lastId = id;
          mirror.appliedTo(number);
        }
      }
      if (gap) {
        try {
          const position = await this.options.resnapshot();
          this.lastId = position.id;
        } catch {
          await this.pause(RETRY_AFTER_FAILURE_MS);
        }
      }
      if (applied.length > 0) this.options.onApplied(applied);
    }
  }

  /** A network retry's pause, in real time: it is not a pool rule, so the injected clock does not drive it. */
  private pause(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(() => this.endPause?.(), ms);
      timer.unref();
      this.endPause = () => {
        this.endPause = undefined;
        clearTimeout(timer);
        resolve();
      };
    });
  }
}

function fieldOf(fields: string[], name: string): string | undefined {
  for (let i = 0; i + 1 < fields.length; i += 2) if (fields[i] === name) return fields[i + 1];
  return undefined;
}
