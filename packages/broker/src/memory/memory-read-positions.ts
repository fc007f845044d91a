import { NotAMemberError, PositionAheadError } from '../errors.js';
import { MIN_STREAM_ID, compareStreamIds } from '../ids.js';
import type { ConversationState, ReadPosition, ReadPositions, ReadState } from '../read-positions.js';
import type { MemoryHub } from './memory-broker.js';

/** Read positions kept in a MemoryHub (see MemoryConversation). */
export class MemoryReadPositions implements ReadPositions {
  constructor(private readonly hub: MemoryHub) {}

  async markRead(room: string, user: string, id: string): Promise<ReadState & { moved: boolean }> {
    const state = this.hub.room(room);
    const conversation = state.conversation;
    const at = conversation?.reads.get(user);
    if (conversation === undefined || at === undefined) throw new NotAMemberError(room, user);
    const newest = state.messages.at(-1)?.id ?? MIN_STREAM_ID;
    if (compareStreamIds(id, newest) > 0) throw new PositionAheadError(room, newest);
    if (compareStreamIds(id, at.id) <= 0) return { read: { ...at }, total: conversation.total, deleted: conversation.deletedAfter(at.number), moved: false };
    const read = { id, number: Math.max(at.number, conversation.numberAt(id, state.messages)) };
    conversation.reads.set(user, read);
    return { read: { ...read }, total: conversation.total, deleted: conversation.deletedAfter(read.number), moved: true };
  }

  async positions(room: string, users: readonly string[]): Promise<Map<string, ReadPosition>> {
    const reads = this.hub.room(room).conversation?.reads;
    const found = new Map<string, ReadPosition>();
    for (const user of users) {
      const at = reads?.get(user);
      if (at !== undefined) found.set(user, { ...at });
    }
    return found;
  }

  async activity(rooms: readonly string[]): Promise<number[]> {
    return rooms.map((room) => this.hub.room(room).conversation?.lastAt ?? 0);
  }

  async state(room: string, user: string): Promise<ConversationState | undefined> {
    const state = this.hub.room(room);
    const conversation = state.conversation;
    const read = conversation?.reads.get(user);
    if (conversation === undefined || read === undefined) return undefined;
    const last = state.newestMessage();
    return {
      read: { ...read }, total: conversation.total, deleted: conversation.deletedAfter(read.number), last: last === undefined ? null : { ...last },
      ...(conversation.pair !== undefined && { pair: conversation.pair }),
    };
  }

  async deletedAfter(room: string, number: number): Promise<number[]> {
    return this.hub.room(room).conversation?.deletedAfter(number) ?? [];
  }
}
