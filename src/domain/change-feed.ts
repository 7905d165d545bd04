/**
 * A synchronous, typed publish/subscribe channel. The pool publishes one event per change;
 * watchers and storage subscribe. Listeners run inline and must be cheap: they queue work, they
 * never do I/O on the publisher's turn.
 */
export type ChangeListener<E> = (event: E) => void;

export class ChangeFeed<E> {
  private readonly listeners = new Set<ChangeListener<E>>();

  /** Adds a listener; the returned function removes it. */
  subscribe(listener: ChangeListener<E>): () => void {
    this.listeners.add(listener);
    return () => {
      this.listeners.delete(listener);
    };
  }

  publish(event: E): void {
    for (const listener of this.listeners) listener(event);
  }

  get size(): number {
    return this.listeners.size;
  }
}
