import type { Broker } from '@chat/broker';
import type { Logger } from './logger.js';
import type { Session } from './session.js';

/**
 * Local connections per user. The node subscribes to a user's channel (for
 * direct messages and server commands) while the user has a connection here,
 * and tells the broker how many there are (cluster-wide user presence).
 */
export class UserRegistry {
  readonly #users = new Map<string, Set<Session>>();

  /**
   * `track`: keeps shutdown waiting for the presence writes of the connections it closes.
   * `arrivals`: told of a user's first connection here (welcome waits for it) and of their last one gone.
   */
  constructor(
    private readonly broker: Broker,
    private readonly log: Logger,
    private readonly track: <T>(operation: Promise<T>) => Promise<T>,
    private readonly arrivals: { userArrived(user: string): Promise<void>; userLeft(user: string): void },
  ) {}

  /**
   * Resolves once frames for the user reach this node and the connection is
   * counted. While the broker is down it resolves at once: the broker
   * subscribes the channel and writes the count when it is back.
   */
  async add(session: Session): Promise<void> {
    let sessions = this.#users.get(session.user);
    if (sessions === undefined) this.#users.set(session.user, (sessions = new Set()));
    sessions.add(session);
    const counted = this.#count(session.user, sessions.size);
    const subscribed = sessions.size > 1 ? undefined : this.broker.subscribeUser(session.user)
      .catch((err: unknown) => this.log.warn({ err, user: session.user }, 'user subscription failed; retried on reconnect'));
    const arrived = sessions.size > 1 ? undefined : this.arrivals.userArrived(session.user)
      .catch((err: unknown) => this.log.warn({ err, user: session.user }, 'the user\'s conversations are not counted here until they reconnect'));
    if (this.broker.up) await Promise.all([counted, subscribed, arrived]);
  }

  remove(session: Session): void {
    const sessions = this.#users.get(session.user);
    if (sessions === undefined || !sessions.delete(session)) return;
    void this.#count(session.user, sessions.size);
    if (sessions.size > 0) return;
    this.#users.delete(session.user);
    this.arrivals.userLeft(session.user);
    this.broker.unsubscribeUser(session.user).catch((err: unknown) => this.log.warn({ err }, 'user unsubscribe failed'));
  }

  /** The user's connections on this node. */
  sessionsOf(user: string): ReadonlySet<Session> {
    return this.#users.get(user) ?? NONE;
  }

  /** A frame for every local connection of `user`: a user has few, so a loop is fine here. */
  deliver(user: string, frame: Uint8Array): void {
    for (const session of this.#users.get(user) ?? []) session.send(frame);
  }

  #count(user: string, connections: number): Promise<void> {
    return this.track(this.broker.presence.setUserConnections(user, connections))
      .catch((err: unknown) => this.log.warn({ err, user }, 'user presence not recorded yet; the broker retries'));
  }
}

const NONE: ReadonlySet<Session> = new Set();
