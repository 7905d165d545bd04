import { toStatus, type KeyEntry } from "./key-entry";
import type { KeyState, KeyStatus, KeyView, ProviderId } from "./types";

/** What a view reads in place: the fields a follower of the change feed routes on. */
type ViewFields = Omit<KeyView, "status">;

/**
 * A view over an object that has the routed fields under the same names (a pool entry, a status).
 * The object is a private field, so that nothing of it but those fields is within reach of a
 * follower, or of anything that serializes or logs the event (JSON.stringify of a view is "{}").
 */
abstract class FieldsView<T extends ViewFields> implements KeyView {
  readonly #fields: T;

  constructor(fields: T) {
    this.#fields = fields;
  }

  protected get fields(): T {
    return this.#fields;
  }

  get keyHash(): string {
    return this.#fields.keyHash;
  }

  get provider(): ProviderId {
    return this.#fields.provider;
  }

  get modelFamilies(): readonly string[] {
    return this.#fields.modelFamilies;
  }

  get state(): KeyState {
    return this.#fields.state;
  }

  get readyAt(): number {
    return this.#fields.readyAt;
  }

  get lastChecked(): number {
    return this.#fields.lastChecked;
  }

  abstract status(): KeyStatus;
}

/** The change feed's view of a pool entry (which holds the secret): copied only in status(). */
export class EntryView extends FieldsView<KeyEntry> {
  status(): KeyStatus {
    return toStatus(this.fields);
  }
}

/**
 * The view of a status that is already an object of its own and never changes (a replica's
 * mirror of the pool in Redis keeps one per key and replaces it on each change): status()
 * returns it as it is.
 */
export class StatusView extends FieldsView<KeyStatus> {
  status(): KeyStatus {
    return this.fields;
  }
}
