import type { Cluster, Redis } from 'ioredis';
import type { ConversationRecord, ConversationRestore } from '../conversation-restore.js';
import type { KeySpace } from './keys.js';
import { callRedis } from './ready.js';
import { defineScripts, type ChatScripts } from './scripts.js';

/**
 * ConversationRestore in Redis: one mark key, and a script per room that writes
 * only where the room has no record, then the members' indexes. On a Redis
 * Cluster the mark lives on one shard: a shard restarted empty on its own is
 * not noticed (run it with the append-only file).
 */
export class RedisConversationRestore implements ConversationRestore {
  readonly #command: (Redis | Cluster) & ChatScripts;

  constructor(command: Redis | Cluster, private readonly keys: KeySpace, private readonly waitMs = 2000) {
    this.#command = defineScripts(command);
  }

  intact(): Promise<boolean> {
    return this.#call(async () => (await this.#command.exists(this.keys.conversationsIntact())) === 1);
  }

  restore({ room, pair, total, last, members }: ConversationRecord): Promise<boolean> {
    return this.#call(async () => {
      const [conv, memberSet, reads] = this.keys.conversation(room);
      const wrote = await this.#command.chatConversationRestore(
        conv, memberSet, reads, pair ?? '', total, last?.id ?? '', ...members.map((m) => `${m.user}|${m.read}|${m.number}`),
      );
      const now = Date.now();
      await Promise.all(members.map((m) => this.#command.zadd(this.keys.userConversations(m.user), 'NX', now, room)));
      return wrote === 1;
    });
  }

  async markIntact(): Promise<void> {
    await this.#call(() => this.#command.set(this.keys.conversationsIntact(), '1'));
  }

  #call<T>(operation: () => Promise<T>): Promise<T> {
    return callRedis(this.#command, this.waitMs, operation);
  }
}
