/** Something to stop listening with; also usable with `using`. */
export interface Disposable {
  dispose(): void;
  [Symbol.dispose](): void;
}

/** A typed event: `on(listener)` returns a {@link Disposable}. A throwing listener never breaks the emitter. */
export class TypedEvent<T> {
  readonly #listeners = new Set<(value: T) => void>();

  /** Adds a listener; dispose the result to remove it. */
  on(listener: (value: T) => void): Disposable {
    this.#listeners.add(listener);
    const dispose = () => {
      this.#listeners.delete(listener);
    };
    return { dispose, [Symbol.dispose]: dispose };
  }

  /** Calls every listener; errors thrown by listeners are reported to `onListenerError`, not rethrown. */
  emit(value: T, onListenerError: (e: unknown) => void = () => {}): void {
    for (const listener of this.#listeners) {
      try {
        listener(value);
      } catch (e) {
        onListenerError(e);
      }
    }
  }
}
