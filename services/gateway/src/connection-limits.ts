/** Open connections per user and per client address, to refuse an upgrade over either limit (0: none). */
export class ConnectionLimits {
  readonly #byUser = new Map<string, number>();
  readonly #byAddress = new Map<string, number>();

  constructor(private readonly perUser: number, private readonly perAddress: number) {}

  /** Why a new connection must be refused, or undefined. */
  refusal(user: string, address: string): string | undefined {
    if (this.perUser > 0 && (this.#byUser.get(user) ?? 0) >= this.perUser) return `at most ${this.perUser} connections per user`;
    if (this.perAddress > 0 && (this.#byAddress.get(address) ?? 0) >= this.perAddress) return `at most ${this.perAddress} connections per address`;
    return undefined;
  }

  add(user: string, address: string): void {
    this.#byUser.set(user, (this.#byUser.get(user) ?? 0) + 1);
    this.#byAddress.set(address, (this.#byAddress.get(address) ?? 0) + 1);
  }

  remove(user: string, address: string): void {
    decrement(this.#byUser, user);
    decrement(this.#byAddress, address);
  }
}

function decrement(counts: Map<string, number>, key: string): void {
  const n = (counts.get(key) ?? 0) - 1;
  if (n > 0) counts.set(key, n);
  else counts.delete(key);
}
