/**
 * Keeps one WatchKeys stream open for as long as the page lives. When it breaks (the server
 * restarted, the network dropped, nothing arrived for too long) it reconnects with exponential
 * backoff and jitter, and says so through `onState`. Access errors stop the loop until the user
 * signs in again: retrying a refused token cannot succeed.
 */
import { Code, ConnectError } from "@connectrpc/connect";
import type { WatchKeysResponse } from "../../gen/ts/keypool/v1/keypool_pb";
import { poolClient } from "./clients";

/** The server sends a heartbeat at least every KEYPOOL_WATCH_HEARTBEAT (15 s by default). */
const SILENCE_LIMIT_MS = 45_000;
const FIRST_DELAY_MS = 500;
const MAX_DELAY_MS = 10_000;

export type WatchState =
  | { kind: "connecting" }
  | { kind: "live"; reconnected: boolean }
  | { kind: "retrying"; attempt: number; retryAt: number; reason: string }
  | { kind: "refused"; code: Code.Unauthenticated | Code.PermissionDenied; message: string };

export interface WatchHandlers {
  onMessage(message: WatchKeysResponse): void;
  onState(state: WatchState): void;
}

export function backoffDelay(attempt: number, random = Math.random()): number {
  const base = Math.min(MAX_DELAY_MS, FIRST_DELAY_MS * 2 ** Math.max(0, attempt - 1));
  return Math.round(base * (0.8 + 0.4 * random));
}

export class WatchLoop {
  private running = false;
  private abort: AbortController | undefined;
  private lastMessageAt = 0;

  constructor(private readonly handlers: WatchHandlers) {
    setInterval(() => {
      if (this.abort && this.lastMessageAt && Date.now() - this.lastMessageAt > SILENCE_LIMIT_MS) {
        this.abort.abort(new ConnectError("no message from the server for too long", Code.DeadlineExceeded));
      }
    }, 5000);
  }

  /** Starts the loop: at load, and again after a sign-in (a refusal stops it). */
  start(): void {
    if (this.running) return;
    this.running = true;
    void this.run();
  }

  private async run(): Promise<void> {
    let attempt = 0;
    let everLive = false;
    while (this.running) {
      const abort = new AbortController();
      this.abort = abort;
      this.handlers.onState({ kind: "connecting" });
      try {
        let first = true;
        for await (const message of poolClient.watchKeys({ batch: true }, { signal: abort.signal })) {
          this.lastMessageAt = Date.now();
          this.handlers.onMessage(message);
          if (first) {
            first = false;
            this.handlers.onState({ kind: "live", reconnected: everLive || attempt > 0 });
            everLive = true;
            attempt = 0;
          }
        }
        throw new ConnectError("the server ended the stream", Code.Unavailable);
      } catch (err) {
        const error = ConnectError.from(err);
        if (error.code === Code.Unauthenticated || error.code === Code.PermissionDenied) {
          this.running = false;
          this.handlers.onState({ kind: "refused", code: error.code, message: error.rawMessage });
          return;
        }
        attempt++;
        const delay = backoffDelay(attempt);
        this.handlers.onState({ kind: "retrying", attempt, retryAt: Date.now() + delay, reason: error.rawMessage });
        await new Promise((resolve) => setTimeout(resolve, delay));
      } finally {
        this.lastMessageAt = 0;
        this.abort = undefined;
      }
    }
  }
}
