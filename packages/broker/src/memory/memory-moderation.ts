import type { Moderation, Restriction, RoomModeration } from '../moderation.js';
import type { MemoryHub } from './memory-broker.js';

/** Moderation kept in a MemoryHub. */
export class MemoryModeration implements Moderation {
  constructor(private readonly hub: MemoryHub) {}

  async setModerator(room: string, user: string, moderator: boolean): Promise<void> {
    const moderators = this.hub.room(room).changes.moderators;
    if (moderator) moderators.add(user);
    else moderators.delete(user);
  }

  async restrict(room: string, user: string, restriction: Restriction): Promise<void> {
    this.hub.room(room).changes.restrictions.set(user, { ...restriction });
  }

  async lift(room: string, user: string, kind: Restriction['kind']): Promise<boolean> {
    const restrictions = this.hub.room(room).changes.restrictions;
    return restrictions.get(user)?.kind === kind && restrictions.delete(user);
  }

  async of(room: string): Promise<RoomModeration> {
    const { moderators, restrictions } = this.hub.room(room).changes;
    return {
      moderators: [...moderators].sort(),
      restricted: [...restrictions].map(([user, r]) => ({ user, ...r })).sort((a, b) => (a.user < b.user ? -1 : 1)),
    };
  }
}
