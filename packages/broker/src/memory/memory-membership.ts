import { ConversationConflictError } from '../errors.js';
import { MIN_STREAM_ID } from '../ids.js';
import { pairOf, type Membership, type RoomAccess } from '../membership.js';
import type { MemberPage } from '../presence.js';
import type { MemoryHub } from './memory-broker.js';

/** Membership kept in a MemoryHub, shared with the hub's brokers (their appends and presence ask it). */
export class MemoryMembership implements Membership {
  constructor(private readonly hub: MemoryHub) {}

  async add(room: string, users: readonly string[]): Promise<string[]> {
    return this.#admit(room, users);
  }

  async remove(room: string, users: readonly string[]): Promise<string[]> {
    const conversation = this.hub.room(room).conversation;
    if (conversation === undefined) return [];
    const removed = users.filter((user) => conversation.members.delete(user));
    for (const user of removed) {
      conversation.reads.delete(user);
      this.hub.user(user).conversations.delete(room);
    }
    return removed;
  }

  async openPair(room: string, a: string, b: string): Promise<void> {
    const pair = pairOf(a, b);
    const existing = this.hub.room(room).conversation;
    if (existing !== undefined && existing.pair !== pair) throw new ConversationConflictError(`room "${room}" is already used otherwise`);
    this.#admit(room, [a, b]);
    this.hub.room(room).conversation!.pair = pair;
  }

  async access(room: string, user: string): Promise<RoomAccess> {
    const conversation = this.hub.room(room).conversation;
    if (conversation === undefined) return 'open';
    return conversation.members.has(user) ? 'member' : 'outsider';
  }

  async members(room: string, after: string | undefined, limit: number): Promise<MemberPage> {
    const members = this.hub.room(room).conversation?.members;
    if (members === undefined) return { users: [], count: 0 };
    const users = members.page(after, limit + 1);
    return users.length > limit ? { users: users.slice(0, limit), count: members.size, next: users[limit - 1]! } : { users, count: members.size };
  }

  async roomsOf(user: string): Promise<string[]> {
    return [...(this.hub.findUser(user)?.conversations ?? [])];
  }

  /** One process writes both at once: nothing is ever left behind. */
  async unlist(): Promise<void> {}

  #admit(room: string, users: readonly string[]): string[] {
    const state = this.hub.room(room);
    const conversation = state.membersOnly();
    const newest = state.messages.at(-1)?.id ?? MIN_STREAM_ID;
    const added = users.filter((user) => conversation.admit(user, newest));
    for (const user of users) this.hub.user(user).conversations.add(room);
    return added;
  }
}
