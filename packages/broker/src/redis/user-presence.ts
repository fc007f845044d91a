import type { Cluster, Redis } from 'ioredis';
import type { BrokerLog } from '../log.js';
import type { EventRecorder } from './event-recorder.js';
import { inParallel } from './in-parallel.js';
import type { KeySpace } from './keys.js';
import type { RedisRoomPresence } from './room-presence.js';
import type { ChatScripts } from './scripts.js';

export interface UserPresenceOptions {
  command: (Redis | Cluster) & ChatScripts;
  keys: KeySpace;
  incarnation: string;
  ttlMs: number;
  events: EventRecorder;
  rooms: RedisRoomPresence;
  log: BrokerLog;
  /** Runs a command as the broker does: waits for a (re)connecting Redis, fails as unavailable. */
  call<T>(operation: () => Promise<T>): Promise<T>;
}

/** Users written at once when many are (a reaping, announcing again): a steady stream, not a burst. */
const CONCURRENCY = 16;

/**
 * This node's users in the cluster-wide user presence (see USER_SET), and the
 * node registry that says which nodes are alive: the one heartbeat a node
 * makes, whatever it holds. Every node beats every ttl/4; the first to find a
 * node expired takes a lease on it and withdraws that node's users and rooms,
 * so user.offline and member.left follow a crash within 1.25 × ttl. Reaping
 * is idempotent: a reaper that dies mid-way is followed by another.
 */
export class RedisUserPresence {
  /** user -> connections here; the source of truth for announcing again. */
  readonly #local = new Map<string, number>();
  /** Users whose latest change did not reach Redis: written again on each heartbeat until it does. */
  readonly #unsynced = new Set<string>();
  readonly #o: UserPresenceOptions;
  #registered: Promise<void> | undefined;

  constructor(options: UserPresenceOptions) {
    this.#o = options;
  }

  /** Records the user's connections on this node (0: none left); kept here and written again later if Redis is away. */
  async set(user: string, connections: number): Promise<void> {
    const first = connections > 0 && !this.#local.has(user);
    if (connections > 0) this.#local.set(user, connections);
    else this.#local.delete(user);
    this.#unsynced.delete(user);
    try {
      await this.#o.call(async () => {
        // Registered before any user is, so a crash from here on is reaped.
        await (this.#registered ??= this.#beat().then(() => {}, (err: unknown) => {
          this.#registered = undefined;
          throw err;
        }));
        await this.#write(user, connections, first);
      });
    } catch (err) {
      this.#unsynced.add(user);
      throw err;
    }
  }

  /** Beats, announces again if this node was reaped or Redis lost it, and reaps dead nodes. */
  async heartbeat(): Promise<void> {
    const { log } = this.#o;
    try {
      const [added, dead] = await this.#beat();
      if (added === 1 && this.#registered !== undefined) {
        log.warn({ users: this.#local.size }, 'this node was not registered (reaped, or Redis lost it); announcing its users and rooms again');
        this.#o.rooms.resyncAll();
        await inParallel([...this.#local], CONCURRENCY, ([user, connections]) => this.#write(user, connections, true));
      }
      this.#registered ??= Promise.resolve();
      for (const user of [...this.#unsynced]) {
        await this.#write(user, this.#local.get(user) ?? 0, true).then(() => this.#unsynced.delete(user), () => {});
      }
      for (const node of dead) await this.#reap(node);
    } catch (err) {
      log.debug({ err }, 'node heartbeat failed');
    }
  }

  /** Leaves the registry (after every connection here was withdrawn). */
  async close(): Promise<void> {
    const { command, keys, incarnation } = this.#o;
    await command.del(keys.nodeUsers(incarnation));
    await command.chatNodesForget(keys.nodes(), keys.nodesReaping(), incarnation);
  }

  #beat(): Promise<[added: number, dead: string[]]> {
    const { command, keys, incarnation, ttlMs } = this.#o;
    return command.chatNodesHeartbeat(keys.nodes(), keys.nodesReaping(), incarnation, ttlMs, ttlMs);
  }

  async #write(user: string, connections: number, first: boolean): Promise<void> {
    const { command, keys, incarnation } = this.#o;
    if (first) await command.sadd(keys.nodeUsers(incarnation), user);
    await this.#userSet(user, incarnation, connections);
    if (connections === 0) await command.srem(keys.nodeUsers(incarnation), user);
  }

  #userSet(user: string, incarnation: string, connections: number): Promise<number> {
    const { command, keys, events } = this.#o;
    const hash = keys.userConnections(user);
    return command.chatUserSet(hash, keys.userRooms(user, incarnation), events.streamOf(hash), incarnation, connections, user, ...events.args());
  }

  /** Withdraws a dead node's users and rooms, then its registration (last, so a node that was only slow finds itself gone and announces again). */
  async #reap(node: string): Promise<void> {
    const { command, keys, log } = this.#o;
    const users = await command.smembers(keys.nodeUsers(node));
    log.warn({ node, users: users.length }, 'a node stopped heartbeating; withdrawing its users and rooms');
    await inParallel(users, CONCURRENCY, async (user) => { await this.#userSet(user, node, 0); });
    await this.#o.rooms.withdrawNode(node);
    await command.del(keys.nodeUsers(node));
    await command.chatNodesForget(keys.nodes(), keys.nodesReaping(), node);
  }
}
