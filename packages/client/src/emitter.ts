/** A minimal typed event emitter that runs in browsers and Node alike. */
export class Emitter<Events extends Record<string, (...args: never[]) => void>> {
  readonly #handlers = new Map<keyof Events, Set<Events[keyof Events]>>();

  on<E extends keyof Events>(event: E, handler: Events[E]): () => void {
    let set = this.#handlers.get(event);
    if (set === undefined) this.#handlers.set(event, (set = new Set()));
    set.add(handler);
    return () => set.delete(handler);
  }

  protected emit<E extends keyof Events>(event: E, ...args: Parameters<Events[E]>): void {
    for (const handler of this.#handlers.get(event) ?? []) (handler as (...a: Parameters<Events[E]>) => void)(...args);
  }
}
