import type { Cluster, Redis } from 'ioredis';
import { ConversationConflictError } from '../errors.js';
import { pairOf, type Membership, type RoomAccess } from '../membership.js';
import type { MemberPage } from '../presence.js';
import type { KeySpace } from './keys.js';
import { callRedis } from './ready.js';
import { defineScripts, type ChatScripts } from './scripts.js';

const ACCESS: readonly RoomAccess[] = ['open', 'member', 'outsider'];

/** Longer than any add takes between its two writes; a listing this old whose room does not admit the user is a leftover. */
export const UNLIST_GRACE_MS = 60_000;

/**
 * Membership in Redis (see conversation-scripts.ts). A change writes two slots:
 * the room's record, which decides, and each user's index, which only says
 * where to look. An add lists the room first and a removal unlists it last, so
 * in between, or after a crash between the two, an index can only name a room
 * that does not admit the user: never miss one that does. Readers skip such a
 * room, and `unlist` drops it once it is older than the grace.
 */
export class RedisMembership implements Membership {
  readonly #command: (Redis | Cluster) & ChatScripts;

  /**
   * `waitMs`: how long a call waits for a (re)connecting Redis before it fails as unavailable.
   * `graceMs`: how long a listing may wait for its room's write before `unlist` takes it for a crash's leftover.
   */
  constructor(command: Redis | Cluster, private readonly keys: KeySpace, private readonly waitMs = 2000, private readonly graceMs = UNLIST_GRACE_MS) {
    this.#command = defineScripts(command);
  }

  /** Listed first: until the room's write lands, the index names a room that does not admit the user yet (see unlist). */
  add(room: string, users: readonly string[]): Promise<string[]> {
    return this.#call(async () => {
      await this.#index(users, room, true);
      const [, ...added] = await this.#command.chatMembersAdd(...this.keys.conversation(room), users.join(','), '');
      return added as string[];
    });
  }

  /** Unlisted last, for the same reason. */
  remove(room: string, users: readonly string[]): Promise<string[]> {
    return this.#call(async () => {
      const removed = await this.#command.chatMembersRemove(...this.keys.conversation(room), users.join(','));
      await this.#index(removed, room, false);
      return removed;
    });
  }

  openPair(room: string, a: string, b: string): Promise<void> {
    return this.#call(async () => {
      await this.#index([a, b], room, true);
      const [status] = await this.#command.chatMembersAdd(...this.keys.conversation(room), `${a},${b}`, pairOf(a, b));
      if (status === -1) throw new ConversationConflictError(`room "${room}" is already used otherwise`);
    });
  }

  unlist(user: string, rooms: readonly string[]): Promise<void> {
    return this.#call(async () => {
      if (rooms.length > 0) await this.#command.chatIndexUnlist(this.keys.userConversations(user), this.graceMs, ...rooms);
    });
  }

  access(room: string, user: string): Promise<RoomAccess> {
    return this.#call(async () => ACCESS[await this.#command.chatMemberAccess(...this.keys.conversation(room), user)]!);
  }

  members(room: string, after: string | undefined, limit: number): Promise<MemberPage> {
    return this.#call(async () => {
      const [count, users] = await this.#command.chatMembersPage(this.keys.roomMembers(room), after ?? '', limit);
      return users.length > limit ? { users: users.slice(0, limit), count, next: users[limit - 1]! } : { users, count };
    });
  }

  roomsOf(user: string): Promise<string[]> {
    return this.#call(() => this.#command.zrange(this.keys.userConversations(user), 0, -1));
  }

  /** Each user's index is on that user's slot: one command per user. A listing's score is when it was last written. */
  async #index(users: readonly string[], room: string, member: boolean): Promise<void> {
    await Promise.all(users.map((user) => (member
      ? this.#command.chatIndexList(this.keys.userConversations(user), room)
      : this.#command.zrem(this.keys.userConversations(user), room))));
  }

  #call<T>(operation: () => Promise<T>): Promise<T> {
    return callRedis(this.#command, this.waitMs, operation);
  }
}
