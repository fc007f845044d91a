import type { Cluster, Redis } from 'ioredis';
import type { Moderation, Restriction, RoomModeration } from '../moderation.js';
import type { KeySpace } from './keys.js';
import { luaScript } from './lua.js';
import { callRedis } from './ready.js';

/* Deletes the user's restriction if it is of `kind` ('b' or 'm'); returns 1 if it did. */
const LIFT = luaScript(['moderation'], ['field', 'kind'], `
local current = redis.call('HGET', K.moderation, A.field)
if not current or string.sub(current, 1, 1) ~= A.kind then return 0 end
return redis.call('HDEL', K.moderation, A.field)
`);

interface LiftCommand {
  chatModerationLift(moderation: string, field: string, kind: string): Promise<number>;
}

/** Moderation in the room's `moderation` hash, which the append, change and presence scripts read (see KeySpace.roomModeration). */
export class RedisModeration implements Moderation {
  readonly #lift: LiftCommand;

  constructor(private readonly command: Redis | Cluster, private readonly keys: KeySpace, private readonly waitMs = 2000) {
    command.defineCommand('chatModerationLift', LIFT);
    this.#lift = command as unknown as LiftCommand;
  }

  async setModerator(room: string, user: string, moderator: boolean): Promise<void> {
    const key = this.keys.roomModeration(room);
    await this.#call(() => (moderator ? this.command.hset(key, `m:${user}`, '1') : this.command.hdel(key, `m:${user}`)));
  }

  async restrict(room: string, user: string, restriction: Restriction): Promise<void> {
    await this.#call(() => this.command.hset(this.keys.roomModeration(room), `r:${user}`, `${restriction.kind === 'ban' ? 'b' : 'm'}|${restriction.reason}`));
  }

  async lift(room: string, user: string, kind: Restriction['kind']): Promise<boolean> {
    return (await this.#call(() => this.#lift.chatModerationLift(this.keys.roomModeration(room), `r:${user}`, kind === 'ban' ? 'b' : 'm'))) === 1;
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
