import type { Cluster, Redis } from 'ioredis';
import type { BrokerLog } from '../log.js';
import type { EventRecorder } from './event-recorder.js';
import type { KeySpace } from './keys.js';
import type { ChatScripts } from './scripts.js';

export interface RoomPresenceOptions {
  command: (Redis | Cluster) & ChatScripts;
  keys: KeySpace;
  incarnation: string;
  /** PUBLISH, or SPUBLISH on Redis Cluster. */
  publish: string;
  ttlMs: number;
  events: EventRecorder;
  log: BrokerLog;
  /** Runs a command as the broker does: waits for a (re)connecting Redis, fails as unavailable. */
  call<T>(operation: () => Promise<T>): Promise<T>;
}

/**
 * This node's share of room presence in Redis (see presence-scripts.ts): which
 * users it holds in which room with how many connections, kept alive by
 * heartbeats, announced again whenever Redis lost it. It also keeps the room
 * index (adds on a fresh hold, prunes when a room empties) and, per user, the
 * rooms joined through this node.
 */
export class RedisRoomPresence {
  /** room -> user -> connections joined here; the source of truth for announcing again. */
  readonly #held = new Map<string, Map<string, number>>();
  /** `room\n user` whose latest change did not reach Redis: written again on each heartbeat until it does. */
  readonly #unsynced = new Set<string>();
  readonly #o: RoomPresenceOptions;

  constructor(options: RoomPresenceOptions) {
    this.#o = options;
  }

  /** Holds `connections` of the user's connections in the room (0 lets go); resolves with the room's members. */
  async set(room: string, user: string, connections: number): Promise<string[]> {
    let users = this.#held.get(room);
    if (connections > 0) {
      if (users === undefined) this.#held.set(room, (users = new Map()));
      users.set(user, connections);
    } else if (users?.delete(user) && users.size === 0) {
      this.#held.delete(room);
    }
    const entry = `${room}\n${user}`;
    this.#unsynced.delete(entry);
    try {
      return await this.#o.call(() => this.#write(room, user, connections));
    } catch (err) {
      this.#unsynced.add(entry);
      throw err;
    }
  }

  /** Keeps this node's presence alive, reaps dead nodes, and announces again what Redis lost. */
  async heartbeat(): Promise<void> {
    const { command, keys, incarnation, publish, ttlMs, events, log } = this.#o;
    for (const entry of [...this.#unsynced]) {
      const [room, user] = entry.split('\n') as [string, string];
      await this.#write(room, user, this.#held.get(room)?.get(user) ?? 0).then(() => this.#unsynced.delete(entry), () => {});
    }
    await Promise.all([...this.#held].map(async ([room, users]) => {
      try {
        const [alive, vacated, epoch] = await command.chatPresenceHeartbeat(
          ...this.#keysOf(room, incarnation), incarnation, ttlMs, ttlMs * 3, keys.presenceNodePrefix(room), keys.roomChannel(room), publish, room,
          ...events.args(),
        );
        if (vacated === 1) await this.#prune(room, epoch);
        if (alive === 1 || users.size === 0) return;
        log.warn({ room, users: users.size }, 'presence was lost (reaped or Redis restarted); re-announcing');
        for (const [user, connections] of [...users]) await this.#write(room, user, connections, true);
      } catch (err) {
        log.debug({ err, room }, 'presence heartbeat failed');
      }
    }));
  }

  /** Withdraws `incarnation`'s presence from every room it held: this node's at shutdown, or a dead node's. */
  async withdrawNode(incarnation: string): Promise<void> {
    const { command, keys, log } = this.#o;
    const rooms = incarnation === this.#o.incarnation ? [...this.#held.keys()] : await command.smembers(keys.nodeRooms(incarnation));
    if (incarnation === this.#o.incarnation) this.#held.clear();
    await Promise.all(rooms.map((room) => this.#withdrawFrom(room, incarnation)
      .catch((err: unknown) => log.warn({ err, room, node: incarnation }, 'presence withdrawal failed'))));
    await command.del(keys.nodeRooms(incarnation));
  }

  async #withdrawFrom(room: string, incarnation: string): Promise<void> {
    const { command, keys, publish, events } = this.#o;
    const [vacated, epoch] = await command.chatPresenceNodeLeave(
      ...this.#keysOf(room, incarnation), incarnation, keys.roomChannel(room), publish, room, ...events.args(),
    );
    if (vacated === 1) await this.#prune(room, epoch);
  }

  /**
   * The script, then what lives on other slots: the room index, the node's
   * rooms (for whoever reaps it) and the user's rooms. A crash between them
   * leaves the index short until the next fresh hold, or a dead node's rooms
   * unreaped until their keys expire; neither lies about who is present.
   */
  async #write(room: string, user: string, connections: number, again = false): Promise<string[]> {
    const { command, keys, incarnation, publish, ttlMs, events } = this.#o;
    const reply = await command.chatPresenceSet(
      ...this.#keysOf(room, incarnation), incarnation, user, connections, ttlMs, ttlMs * 3, keys.presenceNodePrefix(room),
      keys.roomChannel(room), publish, room, ...events.args(),
    );
    if (connections > 0) {
      const [fresh, epoch, members] = reply as [number, string, string[]];
      if (fresh === 1 || again) {
        await Promise.all([
          command.chatRoomIndexAdd(keys.roomIndex(), keys.roomIndexEpochs(), room, epoch),
          command.sadd(keys.nodeRooms(incarnation), room),
          command.sadd(keys.userRooms(user, incarnation), room),
        ]);
      }
      return members;
    }
    const [vacated, epoch] = reply as [number, string];
    await Promise.all([
      vacated === 1 ? this.#prune(room, epoch) : undefined,
      this.#held.has(room) ? undefined : command.srem(keys.nodeRooms(incarnation), room),
      command.srem(keys.userRooms(user, incarnation), room),
    ]);
    return [];
  }

  #prune(room: string, epoch: string): Promise<number> {
    const { command, keys } = this.#o;
    return command.chatRoomIndexPrune(keys.roomIndex(), keys.roomIndexEpochs(), room, epoch);
  }

  #keysOf(room: string, incarnation: string): [nodes: string, users: string, nodeHash: string, epoch: string, events: string] {
    const { keys, events } = this.#o;
    const nodes = keys.presenceNodes(room);
    return [nodes, keys.presenceUsers(room), keys.presenceNodePrefix(room) + incarnation, keys.roomEpoch(room), events.streamOf(nodes)];
  }
}
