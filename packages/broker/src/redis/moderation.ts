import type { Cluster, Redis } from 'ioredis';
import type { Moderation, Restriction, RoomModeration } from '../moderation.js';
import type { KeySpace } from './keys.js';
import { callRedis } from './ready.js';

/** Moderation in the room's `moderation` hash, which the append, change and presence scripts read (see KeySpace.roomModeration). */
export class RedisModeration implements Moderation {
  constructor(private readonly command: Redis | Cluster, private readonly keys: KeySpace, private readonly waitMs = 2000) {}

  async setModerator(room: string, user: string, moderator: boolean): Promise<void> {
    const key = this.keys.roomModeration(room);
    await this.#call(() => (moderator ? this.command.hset(key, `m:${user}`, '1') : this.command.hdel(key, `m:${user}`)));
  }

  async restrict(room: string, user: string, restriction: Restriction | null): Promise<void> {
    const key = this.keys.roomModeration(room);
    await this.#call(() => (restriction === null
      ? this.command.hdel(key, `r:${user}`)
      : this.command.hset(key, `r:${user}`, `${restriction.kind === 'ban' ? 'b' : 'm'}|${restriction.reason}`)));
  }

  async of(room: string): Promise<RoomModeration> {
    const all = await this.#call(() => this.command.hgetall(this.keys.roomModeration(room)));
    const moderators: string[] = [];
    const restricted: RoomModeration['restricted'] = [];
    for (const [field, value] of Object.entries(all)) {
      const user = field.slice(2);
      if (field.startsWith('m:')) moderators.push(user);
      else if (field.startsWith('r:')) restricted.push({ user, kind: value.startsWith('b') ? 'ban' : 'mute', reason: value.slice(2) });
    }
    return { moderators: moderators.sort(), restricted: restricted.sort((a, b) => (a.user < b.user ? -1 : 1)) };
  }

  #call<T>(operation: () => Promise<T>): Promise<T> {
    return callRedis(this.command, this.waitMs, operation);
  }
}
