import { toStatus, type KeyEntry } from "./key-entry";
import type { KeyState, KeyStatus, KeyView, ProviderId } from "./types";

/**
 * The change feed's view of a pool entry: reads the entry in place, and copies it only in
 * status(). The entry is a private field, so the secret it holds is out of reach of a follower
 * and of anything that serializes or logs the event (JSON.stringify of a view is "{}").
 */
export class EntryView implements KeyView {
  readonly #entry: KeyEntry;

  constructor(entry: KeyEntry) {
    this.#entry = entry;
  }

  get keyHash(): string {
    return this.#entry.keyHash;
  }

  get provider(): ProviderId {
    return this.#entry.provider;
  }

  get modelFamilies(): readonly string[] {
    return this.#entry.modelFamilies;
  }

  get state(): KeyState {
    return this.#entry.state;
  }

  get readyAt(): number {
    return this.#entry.readyAt;
  }

  get lastChecked(): number {
    return this.#entry.lastChecked;
  }

  status(): KeyStatus {
    return toStatus(this.#entry);
  }
}

/**
 * The view of a status that is already an object of its own and never changes (a replica's
 * mirror of the pool in Redis keeps one per key and replaces it on each change): status()
 * returns it as it is.
 */
export class StatusView implements KeyView {
  constructor(private readonly fixed: KeyStatus) {}

  get keyHash(): string {
    return this.fixed.keyHash;
  }

  get provider(): ProviderId {
    return this.fixed.provider;
  }

  get modelFamilies(): readonly string[] {
    return this.fixed.modelFamilies;
  }

  get state(): KeyState {
    return this.fixed.state;
  }

  get readyAt(): number {
    return this.fixed.readyAt;
  }

  get lastChecked(): number {
    return this.fixed.lastChecked;
  }

  status(): KeyStatus {
    return this.fixed;
  }
}
