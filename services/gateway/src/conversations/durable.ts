import { ArchiveUnavailableError, type ConversationStore } from '@chat/archive';
import { pairOf, type ConversationState, type Membership, type MemberPage, type ReadPosition, type ReadPositions, type ReadState, type RoomAccess } from '@chat/broker';

/** A write to the archive's copy that failed: the change is in Redis, and repeating it (idempotent) completes it. */
function archived<T>(write: Promise<T>): Promise<T> {
  return write.catch((err: unknown) => {
    throw new ArchiveUnavailableError(`the conversation archive could not be written: ${(err as Error).message}`, { cause: err });
  });
}

/**
 * Membership whose changes are also kept in the archive (PostgreSQL), which puts
 * them back after Redis lost them (see ConversationRestorer). Redis first: it
 * decides, and the change is only answered once the archive has it too, so a
 * failure there is `unavailable` and a repeat (every change is idempotent) completes it.
 */
export class DurableMembership implements Membership {
  constructor(private readonly inner: Membership, private readonly reads: ReadPositions, private readonly store: ConversationStore) {}

  async add(room: string, users: readonly string[]): Promise<string[]> {
    const added = await this.inner.add(room, users);
    await this.#keep(room, users);
    return added;
  }

  async remove(room: string, users: readonly string[]): Promise<string[]> {
    const removed = await this.inner.remove(room, users);
    await archived(this.store.removeMembers(room, users));
    return removed;
  }

  async openPair(room: string, a: string, b: string): Promise<void> {
    await this.inner.openPair(room, a, b);
    await this.#keep(room, [a, b], pairOf(a, b));
  }

  access(room: string, user: string): Promise<RoomAccess> {
    return this.inner.access(room, user);
  }

  members(room: string, after: string | undefined, limit: number): Promise<MemberPage> {
    return this.inner.members(room, after, limit);
  }

  roomsOf(user: string): Promise<string[]> {
    return this.inner.roomsOf(user);
  }

  unlist(user: string, rooms: readonly string[]): Promise<void> {
    return this.inner.unlist(user, rooms);
  }

  /** Stores the members with the positions Redis gave them (the newest message when they joined). */
  async #keep(room: string, users: readonly string[], pair?: string): Promise<void> {
    const positions = await this.reads.positions(room, users);
    const byPosition = new Map<string, string[]>();
    for (const [user, at] of positions) byPosition.set(at.id, [...(byPosition.get(at.id) ?? []), user]);
    await archived(Promise.all([...byPosition].map(([read, members]) => this.store.addMembers(room, members, read, pair))));
  }
}

/** ReadPositions whose moves by `read` are also kept in the archive (see DurableMembership). */
export class DurableReadPositions implements ReadPositions {
  constructor(private readonly inner: ReadPositions, private readonly store: ConversationStore) {}

  async markRead(room: string, user: string, id: string): Promise<ReadState & { moved: boolean }> {
    const state = await this.inner.markRead(room, user, id);
    if (state.moved) await archived(this.store.moveRead(room, user, state.read.id));
    return state;
  }

  positions(room: string, users: readonly string[]): Promise<Map<string, ReadPosition>> {
    return this.inner.positions(room, users);
  }

  activity(rooms: readonly string[]): Promise<number[]> {
    return this.inner.activity(rooms);
  }

  state(room: string, user: string): Promise<ConversationState | undefined> {
    return this.inner.state(room, user);
  }

  deletedAfter(room: string, number: number): Promise<number[]> {
    return this.inner.deletedAfter(room, number);
  }
}
