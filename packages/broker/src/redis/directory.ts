import type { Cluster, Redis } from 'ioredis';
import type { Directory, MemberConnectionsPage, RoomOccupancy, UserPresence } from '../directory.js';
import type { KeySpace } from './keys.js';
import { callRedis } from './ready.js';
import { defineScripts, type ChatScripts } from './scripts.js';

/** The Directory over the presence state the brokers keep in Redis: one or a few commands per answer, on any topology. */
export class RedisDirectory implements Directory {
  readonly #command: (Redis | Cluster) & ChatScripts;

  readonly #waitMs: number;

  /** `waitMs`: how long a call waits for a (re)connecting Redis before it fails as unavailable. */
  constructor(command: Redis | Cluster, private readonly keys: KeySpace, waitMs = 2000) {
    this.#command = defineScripts(command);
    this.#waitMs = waitMs;
  }

  activeRooms(after: string | undefined, limit: number): ReturnType<Directory['activeRooms']> {
    return callRedis(this.#command, this.#waitMs, () => this.#activeRooms(after, limit));
  }

  async #activeRooms(after: string | undefined, limit: number): Promise<{ rooms: RoomOccupancy[]; next?: string }> {
    const { keys } = this;
    const read = await this.#command.zrangebylex(keys.roomIndex(), after === undefined ? '-' : `(${after}`, '+', 'LIMIT', 0, limit + 1);
    const names = read.slice(0, limit);
    const occupancy = await Promise.all(names.map((room) => this.#command.chatRoomOccupancy(keys.roomPresent(room), keys.roomPresence(room))));
    const rooms: RoomOccupancy[] = [];
    const prunes: Promise<number>[] = [];
    names.forEach((room, i) => {
      const [members, connections, epoch] = occupancy[i]!;
      if (members > 0) rooms.push({ room, members, connections });
      else prunes.push(this.#command.chatRoomIndexPrune(keys.roomIndex(), keys.roomIndexEpochs(), room, epoch));
    });
    await Promise.all(prunes);
    return read.length > limit ? { rooms, next: names.at(-1)! } : { rooms };
  }

  roomMembers(room: string, after: string | undefined, limit: number): ReturnType<Directory['roomMembers']> {
    return callRedis(this.#command, this.#waitMs, () => this.#roomMembers(room, after, limit));
  }

  async #roomMembers(room: string, after: string | undefined, limit: number): Promise<MemberConnectionsPage> {
    const [count, users, connections] = await this.#command.chatPresencePage(this.keys.roomPresent(room), this.keys.roomConnections(room), after ?? '', limit, 1);
    const members = users.slice(0, limit).map((user, i) => ({ user, connections: Number(connections[i] ?? 0) }));
    return users.length > limit ? { members, count, next: users[limit - 1]! } : { members, count };
  }

  userPresence(user: string): ReturnType<Directory['userPresence']> {
    return callRedis(this.#command, this.#waitMs, () => this.#userPresence(user));
  }

  async #userPresence(user: string): Promise<UserPresence> {
    const [connections, rooms] = await this.#command.chatUserPresence(this.keys.userConnections(user), this.keys.userRooms(user, ''));
    return { online: connections > 0, connections, rooms: rooms.sort(compareNames) };
  }
}

function compareNames(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}
