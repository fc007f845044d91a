import type { Broker } from '@chat/broker';
import type { Logger } from './logger.js';
import type { Session } from './session.js';

/**
 * Local connections per user. The node subscribes to a user's channel (for
 * direct messages) while the user has a connection here.
 */
export class UserRegistry {
  readonly #users = new Map<string, Set<Session>>();

  constructor(private readonly broker: Broker, private readonly log: Logger) {}

  /**
   * Resolves once frames for the user reach this node. While the broker is down
   * it resolves at once: the broker subscribes the channel when it is back.
   */
  async add(session: Session): Promise<void> {
    let sessions = this.#users.get(session.user);
    if (sessions === undefined) this.#users.set(session.user, (sessions = new Set()));
    sessions.add(session);
    if (sessions.size > 1) return;
    const subscribed = this.broker.subscribeUser(session.user)
      .catch((err: unknown) => this.log.warn({ err, user: session.user }, 'user subscription failed; retried on reconnect'));
    if (this.broker.up) await subscribed;
  }

  remove(session: Session): void {
    const sessions = this.#users.get(session.user);
    if (sessions === undefined || !sessions.delete(session) || sessions.size > 0) return;
    this.#users.delete(session.user);
    this.broker.unsubscribeUser(session.user).catch((err: unknown) => this.log.warn({ err }, 'user unsubscribe failed'));
  }

  /** A frame for every local connection of `user`: a user has few, so a loop is fine here. */
  deliver(user: string, frame: Uint8Array): void {
    for (const session of this.#users.get(user) ?? []) session.send(frame);
  }
}
