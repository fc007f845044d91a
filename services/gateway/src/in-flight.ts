/** Counts operations under way so shutdown can wait for them. */
export class InFlight {
  #count = 0;
  #waiters: Array<() => void> = [];

  get count(): number {
    return this.#count;
  }

  track<T>(operation: Promise<T>): Promise<T> {
    this.#count++;
    const done = (): void => {
      if (--this.#count === 0) for (const wake of this.#waiters.splice(0)) wake();
    };
    operation.then(done, done);
    return operation;
  }

  /** Resolves when nothing is under way. */
  idle(): Promise<void> {
    return this.#count === 0 ? Promise.resolve() : new Promise((resolve) => this.#waiters.push(resolve));
  }
}
