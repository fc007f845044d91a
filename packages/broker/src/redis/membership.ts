import type { Cluster, Redis } from 'ioredis';
import { ConversationConflictError } from '../errors.js';
import { pairOf, type Membership, type RoomAccess } from '../membership.js';
import type { MemberPage } from '../presence.js';
import type { KeySpace } from './keys.js';
import { callRedis } from './ready.js';
import { defineScripts, type ChatScripts } from './scripts.js';

const ACCESS: readonly RoomAccess[] = ['open', 'member', 'outsider'];

/**
 * Membership in Redis (see conversation-scripts.ts): the room's record first,
 * then each user's index. Between the two a user's index may lack a room they
 * already are a member of (or list one they left); the room decides.
 */
export class RedisMembership implements Membership {
  readonly #command: (Redis | Cluster) & ChatScripts;

  /** `waitMs`: how long a call waits for a (re)connecting Redis before it fails as unavailable. */
  constructor(command: Redis | Cluster, private readonly keys: KeySpace, private readonly waitMs = 2000) {
    this.#command = defineScripts(command);
  }

  add(room: string, users: readonly string[]): Promise<string[]> {
    return this.#call(async () => {
      const [, ...added] = await this.#command.chatMembersAdd(...this.keys.conversation(room), users.join(','), '');
      await this.#index(added, room, true);
      return added as string[];
    });
  }

  remove(room: string, users: readonly string[]): Promise<string[]> {
    return this.#call(async () => {
      const removed = await this.#command.chatMembersRemove(...this.keys.conversation(room), users.join(','));
      await this.#index(removed, room, false);
      return removed;
    });
  }

  openPair(room: string, a: string, b: string): Promise<void> {
    return this.#call(async () => {
      const [status] = await this.#command.chatMembersAdd(...this.keys.conversation(room), `${a},${b}`, pairOf(a, b));
      if (status === -1) throw new ConversationConflictError(`room "${room}" is already used otherwise`);
      // Every time, not only when the room was new: a crash between the room's write and these is repaired by the next open.
      await this.#index([a, b], room, true);
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

  /** Each user's index is on that user's slot: one command per user. */
  async #index(users: readonly string[], room: string, member: boolean): Promise<void> {
    const now = Date.now();
    await Promise.all(users.map((user) => (member
      ? this.#command.zadd(this.keys.userConversations(user), 'NX', now, room)
      : this.#command.zrem(this.keys.userConversations(user), room))));
  }

  #call<T>(operation: () => Promise<T>): Promise<T> {
    return callRedis(this.#command, this.waitMs, operation);
  }
}
