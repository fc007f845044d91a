import { Cluster, type Redis } from 'ioredis';
import { NotAMemberError, PositionAheadError } from '../errors.js';
import type { ConversationState, ReadPosition, ReadPositions, ReadState } from '../read-positions.js';
import type { KeySpace } from './keys.js';
import { callRedis } from './ready.js';
import { defineScripts, type ChatScripts } from './scripts.js';

/** Read positions in Redis (see conversation-scripts.ts): one script or command per room. */
export class RedisReadPositions implements ReadPositions {
  readonly #command: (Redis | Cluster) & ChatScripts;

  /** `waitMs`: how long a call waits for a (re)connecting Redis before it fails as unavailable. */
  constructor(command: Redis | Cluster, private readonly keys: KeySpace, private readonly waitMs = 2000) {
    this.#command = defineScripts(command);
  }

  markRead(room: string, user: string, id: string): Promise<ReadState & { moved: boolean }> {
    return this.#call(async () => {
      const reply = await this.#command.chatReadMove(...this.keys.conversation(room), user, id);
      if (reply[0] === 0) throw new NotAMemberError(room, user);
      if (reply[0] === -1) throw new PositionAheadError(room, reply[1]);
      const [, read, number, total, moved, ...deleted] = reply;
      return { read: { id: read, number: Number(number) }, total: Number(total), deleted: deleted.map(Number), moved: moved === 1 };
    });
  }

  positions(room: string, users: readonly string[]): Promise<Map<string, ReadPosition>> {
    return this.#call(async () => {
      const found = new Map<string, ReadPosition>();
      if (users.length === 0) return found;
      const values = await this.#command.hmget(this.keys.roomReads(room), ...users);
      values.forEach((value, i) => {
        if (value !== null) found.set(users[i]!, parsePosition(value));
      });
      return found;
    });
  }

  /**
   * One script for every room on a single Redis (a user in 1,000 rooms costs one
   * command, not 1,000); on a Redis Cluster, where a script reaches one slot, one
   * read per room.
   */
  activity(rooms: readonly string[]): Promise<number[]> {
    return this.#call(async () => {
      const keys = rooms.map((room) => this.keys.roomConversation(room));
      const at = this.#command instanceof Cluster
        ? await Promise.all(keys.map((key) => this.#command.hget(key, 'at')))
        : keys.length === 0 ? [] : await this.#command.chatActivity(keys.length, ...keys);
      return at.map((us) => Number(us ?? 0));
    });
  }

  state(room: string, user: string): Promise<ConversationState | undefined> {
    return this.#call(async () => {
      const [total, read, pair, newest, deleted] = await this.#command.chatConversationState(...this.keys.conversation(room), user);
      if (read === '') return undefined;
      const last = newest.length === 0 ? null : { id: newest[0], body: newest[1] };
      return { read: parsePosition(read), total: Number(total), deleted: deleted.map(Number), last, ...(pair !== '' && { pair }) };
    });
  }

  deletedAfter(room: string, number: number): Promise<number[]> {
    return this.#call(async () => (await this.#command.chatDeletedAfter(...this.keys.conversation(room), number)).map(Number));
  }

  #call<T>(operation: () => Promise<T>): Promise<T> {
    return callRedis(this.#command, this.waitMs, operation);
  }
}

function parsePosition(value: string): ReadPosition {
  const bar = value.indexOf('|');
  return { id: value.slice(0, bar), number: Number(value.slice(bar + 1)) };
}

